// The reading helpers of config/: a JSON value read into a typed field, or
// a problem with its location ("must be a string, got an integer"). Shared by
// the config file (config.cpp) and one peer (peer.cpp), so both word alike.
#pragma once

#include <picojson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"
#include "config/validate.hpp"

namespace fedproxy::config {

// The member `key` of o, or nullptr.
const picojson::value* member(const picojson::object& o, std::string_view key);

class Reader {
 public:
  explicit Reader(std::string base_dir) : base_(std::move(base_dir)) {}

  std::vector<ConfigProblem> problems;

  // p against base unless absolute, lexically normal, no trailing '/'.
  static std::string resolve(const std::string& base, const std::string& p);

 protected:
  std::string base_;  // relative paths are resolved against it

  void add(std::string where, std::string message);
  // Unknown keys of o (where its location), with a suggestion or the known ones.
  void check_keys(const picojson::object& o, const std::string& where,
                  const std::vector<std::string_view>& known);
  // Returns the object, or nullptr after reporting a type problem.
  const picojson::object* as_object(const picojson::value& v, const std::string& where);
  bool read_string(const picojson::value& v, const std::string& where, std::string& out);
  bool read_nonempty_string(const picojson::value& v, const std::string& where, std::string& out);
  bool read_bool(const picojson::value& v, const std::string& where, bool& out);
  bool read_enum(const picojson::value& v, const std::string& where,
                 const std::vector<std::string_view>& allowed, std::string& out);
  // A file or directory path, resolved against base_.
  // null (when nullable) means "not configured" and leaves out empty.
  bool read_path(const picojson::value& v, const std::string& where, std::string& out, bool nullable);
  // An array of non-empty strings; nullopt after reporting.
  std::optional<std::vector<std::string>> read_string_list(const picojson::value& v, const std::string& where);

  template <typename T>
  bool read_uint(const picojson::value& v, const std::string& where, T& out, uint64_t min, uint64_t max) {
    std::string range = "an integer between " + std::to_string(min) + " and " + std::to_string(max);
    if (!v.is<int64_t>()) {
      if (v.is<double>()) {
        add(where, "must be " + range + " (got " + v.serialize() + ")");
      } else {
        add(where, "must be " + range + ", got " + detail::type_name(v));
      }
      return false;
    }
    int64_t i = v.get<int64_t>();
    if (i < 0 || static_cast<uint64_t>(i) < min || static_cast<uint64_t>(i) > max) {
      add(where, "must be " + range + " (got " + std::to_string(i) + ")");
      return false;
    }
    out = static_cast<T>(i);
    return true;
  }
};

}  // namespace fedproxy::config
