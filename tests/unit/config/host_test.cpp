// config::parse_host: the host[:port] of peer URLs, admin.allowed_hosts and
// Host headers, canonicalised so equal hosts compare equal.

#include "config/host.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace fedproxy::config;

TEST_CASE("parse_host accepts names, IPv4 and bracketed IPv6, with or without a port") {
  struct Case {
    std::string text;
    std::string host;  // canonical
    bool ipv6;
    int port;  // -1: none
    std::string shown;
  };
  const std::vector<Case> cases = {
      {"localhost", "localhost", false, -1, "localhost"},
      {"LocalHost:9901", "localhost", false, 9901, "localhost:9901"},
      {"admin.example.internal", "admin.example.internal", false, -1, "admin.example.internal"},
      {"a-b.c1:1", "a-b.c1", false, 1, "a-b.c1:1"},
      {"127.0.0.1:65535", "127.0.0.1", false, 65535, "127.0.0.1:65535"},
      {"[::1]", "::1", true, -1, "[::1]"},
      {"[0:0:0:0:0:0:0:1]:9901", "::1", true, 9901, "[::1]:9901"},
      {"[FD00::5]:443", "fd00::5", true, 443, "[fd00::5]:443"},
      {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1", true, -1, "[::ffff:127.0.0.1]"},
      {"2130706433", "2130706433", false, -1, "2130706433"},  // a name, not an address
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string error;
    auto h = parse_host(c.text, &error);
    REQUIRE_MESSAGE(h.has_value(), error);
    CHECK(h->host == c.host);
    CHECK(h->ipv6 == c.ipv6);
    CHECK(h->port.has_value() == (c.port >= 0));
    if (c.port >= 0) CHECK(*h->port == c.port);
    CHECK(h->to_string() == c.shown);
  }
}

TEST_CASE("parse_host refuses what is not a host[:port]") {
  struct Case {
    std::string text;
    std::string error;  // how the message starts
  };
  const std::vector<Case> cases = {
      {"", "invalid host"},
      {":9901", "invalid host"},
      {"localhost:", "empty port"},
      {"localhost:0", "invalid port"},
      {"localhost:65536", "invalid port"},
      {"localhost:+80", "invalid port"},
      {"localhost: 80", "invalid port"},
      {"localhost.", "invalid host"},
      {".localhost", "invalid host"},
      {"-a.example", "invalid host"},
      {"a_b.example", "invalid host"},
      {"user@host", "invalid host"},
      {"host/path", "invalid host"},
      {"host:80/path", "invalid port"},
      {"*.example", "invalid host"},
      {"::1", "invalid host"},
      {"[::1", "unterminated '['"},
      {"[::1]x", "unexpected characters after ']'"},
      {"[::1]:", "empty port"},
      {"[zz::1]", "invalid IPv6 address"},
      {"[127.0.0.1]", "invalid IPv6 address"},
      {"[fe80::1%eth0]", "invalid IPv6 address"},
      {"exa mple", "invalid host"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string error;
    CHECK_FALSE(parse_host(c.text, &error).has_value());
    CHECK(error.starts_with(c.error));
  }
}
