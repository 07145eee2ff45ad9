#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "proxy/base/outcome.hpp"
#include "proxy/base/result.hpp"

using namespace fedproxy::base;

namespace {
Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return make_error(Errc::invalid, std::string("not a digit: ") + c);
  return c - '0';
}
}  // namespace

TEST_CASE("Result holds a value or an error, never both") {
  Result<int> seven = parse_digit('7');
  REQUIRE(seven.ok());
  CHECK(*seven == 7);
  Result<int> bad = parse_digit('x');
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::invalid);
  CHECK(bad.message() == "not a digit: x");
}

TEST_CASE("an error may name the file it is about") {
  Error plain = make_error(Errc::io, "cannot read: No such file or directory");
  CHECK(plain.file.empty());
  CHECK(to_string(plain) == "cannot read: No such file or directory");
  Error about = make_error(Errc::refused, "file is world-readable", "/etc/fedproxy/node.key");
  CHECK(about.file == "/etc/fedproxy/node.key");
  CHECK(to_string(about) == "/etc/fedproxy/node.key: file is world-readable");
}

TEST_CASE("Result moves a move-only value out") {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(3);
  std::unique_ptr<int> p = std::move(r).value();
  REQUIRE(p);
  CHECK(*p == 3);
  Status s = ok_status();
  CHECK(s.ok());
}

TEST_CASE("every outcome has its SPEC §10 name") {
  CHECK(to_string(Outcome::completed) == "completed");
  CHECK(to_string(Outcome::denied) == "denied");
  CHECK(to_string(Outcome::client_aborted) == "client_aborted");
  CHECK(to_string(Outcome::client_timeout) == "client_timeout");
  CHECK(to_string(Outcome::upstream_error) == "upstream_error");
  CHECK(to_string(Outcome::upstream_timeout) == "upstream_timeout");
  CHECK(to_string(Outcome::shutdown_cut) == "shutdown_cut");
}
