// normalize_path and route matching (SPEC §4): decoding of unreserved
// escapes, dot segments, "//", encoded slashes, climbing above the root, and
// the classic traversal spellings.

#include <doctest/doctest.h>

#include <string>

#include "policy/policy.hpp"
#include "policy/policy_internal.hpp"

using namespace fedproxy::policy;

namespace {

struct PathCase {
  const char* in;
  const char* out;  // nullptr = invalid (nullopt)
};

}  // namespace

TEST_CASE("normalize_path: table") {
  const PathCase cases[] = {
      {"/", "/"},
      {"/api/v1/tasks", "/api/v1/tasks"},
      {"/api/v1/tasks/", "/api/v1/tasks/"},
      // dot segments
      {"/api/v1/tasks/../credentials", "/api/v1/credentials"},
      {"/api/v1/tasks/./1", "/api/v1/tasks/1"},
      {"/api/./v1/tasks", "/api/v1/tasks"},
      {"/api/v1/tasks/.", "/api/v1/tasks/"},
      {"/api/v1/tasks/..", "/api/v1/"},
      {"/a/b/../../..", nullptr},
      {"/..", nullptr},
      {"/../api/v1/tasks", nullptr},
      {"/a/..", "/"},
      {"/.", "/"},
      {"/a/.../b", "/a/.../b"},  // "..." is a name
      {"/a/..b/c", "/a/..b/c"},
      // encoded dots are decoded before dot-segment resolution
      {"/api/v1/tasks/%2e%2e/credentials", "/api/v1/credentials"},
      {"/api/v1/tasks/%2E%2E/credentials", "/api/v1/credentials"},
      {"/api/v1/tasks/%2E%2E/", "/api/v1/"},
      {"/api/v1/tasks/.%2e/credentials", "/api/v1/credentials"},
      {"/api/v1/tasks/%2e/1", "/api/v1/tasks/1"},
      {"/%2e%2e/etc", nullptr},
      // empty segments collapse
      {"//api//v1///tasks", "/api/v1/tasks"},
      {"/api/v1/tasks//", "/api/v1/tasks/"},
      {"//", "/"},
      // unreserved escapes are decoded, others kept with uppercase hex
      {"/api/v1/%74asks", "/api/v1/tasks"},
      {"/api/v1/t%41sks", "/api/v1/tAsks"},
      {"/a/%7e%2d%5f%2E", "/a/~-_."},
      {"/a/%2f", "/a/%2F"},
      {"/a/%20b", "/a/%20b"},
      {"/a/%c3%a9", "/a/%C3%A9"},
      {"/a/%00", "/a/%00"},
      {"/a/%25", "/a/%25"},
      {"/a/%252e%252e/b", "/a/%252e%252e/b"},  // decoded once only
      // an encoded slash is data: no traversal through it
      {"/api/v1/tasks/..%2fcredentials", "/api/v1/tasks/..%2Fcredentials"},
      {"/api/v1/tasks/..%2F..%2Fcredentials", "/api/v1/tasks/..%2F..%2Fcredentials"},
      {"/api/v1/tasks%2F..%2Fcredentials", "/api/v1/tasks%2F..%2Fcredentials"},
      // backslash is data, not a separator
      {"/api/v1/tasks/..\\credentials", "/api/v1/tasks/..\\credentials"},
      {"/a\\..\\b", "/a\\..\\b"},
      // malformed escapes
      {"/a/%zz", nullptr},
      {"/a/%", nullptr},
      {"/a/%2", nullptr},
      {"/a/%2/b", nullptr},
      {"/a/%g0", nullptr},
      // not a path
      {"", nullptr},
      {"api/v1", nullptr},
      {"*", nullptr},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.in));
    auto got = normalize_path(c.in);
    if (c.out == nullptr) {
      CHECK_FALSE(got.has_value());
    } else {
      REQUIRE(got.has_value());
      CHECK(*got == c.out);
    }
  }
}

TEST_CASE("normalize_path: idempotent and never longer than its input") {
  const char* inputs[] = {"/a/b/../c/./d//e/", "/%41%2f%2e%2E/x", "/x/%7E/../y", "/a/b/c/../../.."};
  for (const char* in : inputs) {
    INFO(std::string(in));
    auto once = normalize_path(in);
    REQUIRE(once.has_value());
    CHECK(once->size() <= std::string(in).size());
    auto twice = normalize_path(*once);
    REQUIRE(twice.has_value());
    CHECK(*twice == *once);
  }
}

TEST_CASE("normalize_into: a small buffer is refused, not overrun") {
  char buf[4];
  size_t len = 0;
  CHECK(normalize_into("/abcdef", buf, sizeof buf, &len) == PathStatus::too_long);
  CHECK(normalize_into("/ab", buf, sizeof buf, &len) == PathStatus::ok);
  CHECK(std::string(buf, len) == "/ab");
}

TEST_CASE("route prefixes match on segment boundaries") {
  CHECK(prefix_matches("/api/v1/tasks", "/api/v1/tasks"));
  CHECK(prefix_matches("/api/v1/tasks/1", "/api/v1/tasks"));
  CHECK(prefix_matches("/api/v1/tasks/", "/api/v1/tasks"));
  CHECK_FALSE(prefix_matches("/api/v1/tasksfoo", "/api/v1/tasks"));
  CHECK_FALSE(prefix_matches("/api/v1/task", "/api/v1/tasks"));
  CHECK_FALSE(prefix_matches("/api/v1/tasks%2Ffoo", "/api/v1/tasks"));
  CHECK(prefix_matches("/static/a.css", "/static/"));
  CHECK_FALSE(prefix_matches("/static", "/static/"));
  CHECK(prefix_matches("/anything", "/"));
}
