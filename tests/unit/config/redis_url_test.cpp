// rate_limits.redis_url (SPEC §14): the URLs that read, and those refused
// with a reason.

#include <doctest/doctest.h>

#include <string>

#include "config/redis_url.hpp"

using namespace fedproxy::config;

TEST_CASE("redis_url: accepted forms") {
  struct Row {
    const char* url;
    const char* host;
    uint16_t port;
    unsigned db;
    const char* user;
    const char* pass;
  };
  const Row rows[] = {
      {"redis://valkey:6379/0", "valkey", 6379, 0, "", ""},
      {"redis://valkey", "valkey", 6379, 0, "", ""},
      {"redis://127.0.0.1:7000/3", "127.0.0.1", 7000, 3, "", ""},
      {"redis://[::1]:6380/15", "::1", 6380, 15, "", ""},
      {"redis://:s3cret@redis.internal:6379/1", "redis.internal", 6379, 1, "", "s3cret"},
      {"redis://fedproxy:p%40ss%3Aword@r:6379/", "r", 6379, 0, "fedproxy", "p@ss:word"},
      {"redis://onlypass@r", "r", 6379, 0, "", "onlypass"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.url);
    std::string err;
    auto u = parse_redis_url(r.url, &err);
    REQUIRE_MESSAGE(u, err);
    CHECK(u->host.host == r.host);
    CHECK(u->host.port == r.port);
    CHECK(u->db == r.db);
    CHECK(u->username == r.user);
    CHECK(u->password == r.pass);
    CHECK(u->display().find(r.pass[0] ? r.pass : "\x01") == std::string::npos);  // never shows the password
  }
}

TEST_CASE("redis_url: refused with a reason") {
  const char* rows[] = {"valkey:6379", "http://valkey:6379", "rediss://valkey:6380/0", "redis://valkey:0/0",
                        "redis://valkey:6379/16", "redis://valkey:6379/x", "redis://valkey:6379/0?timeout=1",
                        "redis://", "redis://:%zz@valkey", "redis://va lkey:6379"};
  for (const char* url : rows) {
    CAPTURE(url);
    std::string err;
    CHECK_FALSE(parse_redis_url(url, &err));
    CHECK_FALSE(err.empty());
  }
}
