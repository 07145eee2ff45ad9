// Result<T>: a value or an error (code + message), like std::expected, which
// C++20 lacks. The one way fallible functions of proxy/ and certwatch/
// report failure (policy/ may include it too): no exceptions on the data
// path, no string out-parameters.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace fedproxy::base {

enum class Errc {
  invalid,      // the input is malformed or fails validation
  not_found,    // a file, name or entry does not exist
  io,           // the operating system refused (open, read, write, bind)
  unavailable,  // a dependency cannot answer now (resolver, upstream)
  refused,      // a policy or state forbids it
};

struct Error {
  Errc code = Errc::invalid;
  std::string message;
  // The file the error is about, when the caller reports it apart from the
  // message (a log line's "file" field); "" when none.
  std::string file = {};
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  const std::string& message() const { return error().message; }

 private:
  std::variant<T, Error> v_;
};

// For operations that produce nothing but may fail.
struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

inline Error make_error(Errc code, std::string message, std::string file = {}) {
  return Error{code, std::move(message), std::move(file)};
}

// "<file>: <message>", or the message alone when the error names no file.
inline std::string to_string(const Error& error) {
  return error.file.empty() ? error.message : error.file + ": " + error.message;
}

}  // namespace fedproxy::base
