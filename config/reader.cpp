#include "config/reader.hpp"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "config/json.hpp"

namespace fedproxy::config {

namespace fs = std::filesystem;
using detail::quote;
using detail::type_name;
using json::index_path;
using json::key_path;
using picojson::array;
using picojson::object;
using picojson::value;

namespace {

// detail::closest, never suggesting a key that is ignored ("$schema", "_comment").
std::optional<std::string_view> closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::vector<std::string_view> suggestible;
  for (auto c : candidates) {
    if (!c.starts_with("$") && !c.starts_with("_")) suggestible.push_back(c);
  }
  return detail::closest(word, suggestible);
}

std::string join(const std::vector<std::string_view>& words) {
  std::string out;
  for (auto w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

}  // namespace

const value* member(const object& o, std::string_view key) {
  auto it = o.find(std::string(key));
  return it == o.end() ? nullptr : &it->second;
}

void Reader::add(std::string where, std::string message) {
  problems.push_back({std::move(where), std::move(message)});
}

void Reader::check_keys(const object& o, const std::string& where,
                const std::vector<std::string_view>& known) {
  for (const auto& [key, _] : o) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string msg = "unknown key";
    if (auto s = closest(key, known)) {
      msg += "; did you mean " + quote(*s) + "?";
    } else {
      std::vector<std::string_view> shown;
      for (auto k : known) {
        if (!k.starts_with("$") && !k.starts_with("_")) shown.push_back(k);
      }
      msg += " (known keys: " + join(shown) + ")";
    }
    add(key_path(where, key), msg);
  }
}

// Returns the object, or nullptr after reporting a type problem.
const object* Reader::as_object(const value& v, const std::string& where) {
  if (v.is<object>()) return &v.get<object>();
  add(where, std::string("must be an object, got ") + type_name(v));
  return nullptr;
}

bool Reader::read_string(const value& v, const std::string& where, std::string& out) {
  if (!v.is<std::string>()) {
    add(where, std::string("must be a string, got ") + type_name(v));
    return false;
  }
  const std::string& s = v.get<std::string>();
  if (s.find('\0') != std::string::npos) {
    add(where, "must not contain NUL characters");
    return false;
  }
  out = s;
  return true;
}

bool Reader::read_nonempty_string(const value& v, const std::string& where, std::string& out) {
  std::string s;
  if (!read_string(v, where, s)) return false;
  if (s.empty()) {
    add(where, "must not be empty");
    return false;
  }
  out = std::move(s);
  return true;
}

bool Reader::read_bool(const value& v, const std::string& where, bool& out) {
  if (!v.is<bool>()) {
    add(where, std::string("must be true or false, got ") + type_name(v));
    return false;
  }
  out = v.get<bool>();
  return true;
}


bool Reader::read_enum(const value& v, const std::string& where,
               const std::vector<std::string_view>& allowed, std::string& out) {
  std::string s;
  if (!read_string(v, where, s)) return false;
  if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) {
    out = s;
    return true;
  }
  std::string msg = "must be one of " + join(allowed) + " (got " + quote(s) + ")";
  if (auto near = closest(s, allowed)) msg += "; did you mean " + quote(*near) + "?";
  add(where, msg);
  return false;
}

// A file or directory path, resolved against the config file's directory.
// null (when nullable) means "not configured" and leaves out empty.
bool Reader::read_path(const value& v, const std::string& where, std::string& out, bool nullable) {
  if (nullable && v.is<picojson::null>()) {
    out.clear();
    return true;
  }
  std::string s;
  if (!v.is<std::string>()) {
    add(where, std::string("must be a path string") + (nullable ? " or null" : "") + ", got " +
                   type_name(v));
    return false;
  }
  if (!read_nonempty_string(v, where, s)) return false;
  out = resolve(base_, s);
  return true;
}

std::string Reader::resolve(const std::string& base, const std::string& p) {
  fs::path path(p);
  if (path.is_relative()) path = fs::path(base) / path;
  std::string out = path.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::optional<std::vector<std::string>> Reader::read_string_list(const value& v,
                                                         const std::string& where) {
  if (!v.is<array>()) {
    add(where, std::string("must be an array of strings or null, got ") + type_name(v));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  const array& a = v.get<array>();
  for (size_t i = 0; i < a.size(); ++i) {
    std::string s;
    if (read_nonempty_string(a[i], index_path(where, i), s)) {
      out.push_back(std::move(s));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}


}  // namespace fedproxy::config
