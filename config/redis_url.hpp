// rate_limits.redis_url (SPEC §14): "redis://[[user]:password@]host[:port][/db]".
// Valkey speaks the same protocol. TLS (rediss://) is refused: hiredis 0.14,
// Debian 12's, has no TLS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/host.hpp"

namespace fedproxy::config {

struct RedisUrl {
  HostPort host;         // port defaults to 6379
  unsigned db = 0;       // 0..15 (SELECT)
  std::string username;  // "" = the default user
  std::string password;  // "" = no AUTH
  // "host:port/db" without credentials: for /status, logs and messages.
  std::string display() const;
  bool operator==(const RedisUrl&) const = default;
};

// nullopt with *error set (a phrase) when the text is not such a URL.
std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string* error = nullptr);

}  // namespace fedproxy::config
