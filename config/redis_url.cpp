#include "config/redis_url.hpp"

#include <charconv>

namespace fedproxy::config {

namespace {
// Userinfo is percent-decoded (a password may hold ':' or '@' that way).
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size() || std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr != s.data() + i + 3) {
      return std::nullopt;
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}
}  // namespace

std::string RedisUrl::display() const {
  HostPort hp = host;
  return hp.to_string() + "/" + std::to_string(db);
}

std::optional<RedisUrl> parse_redis_url(std::string_view url, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<RedisUrl> {
    if (error) *error = why;
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.starts_with("rediss://")) return fail("rediss:// (TLS) is not supported; use redis:// on a trusted network");
  if (!url.starts_with(kScheme)) return fail("must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    auto pass = percent_decode(colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1));
    if (!user || !pass) return fail("invalid percent-encoding in the user information");
    if (colon == std::string_view::npos) {
      out.password = *user;  // "redis://secret@host": the password alone
    } else {
      out.username = *user;
      out.password = *pass;
    }
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (rest.find_first_of("?#") != std::string_view::npos) return fail("no query or fragment allowed");
  std::string herr;
  auto hp = parse_host(authority, &herr);
  if (!hp) {
    if (error) *error = "host: " + herr;
    return std::nullopt;
  }
  if (!hp->port) hp->port = 6379;
  out.host = *hp;
  if (authority.size() < rest.size()) {
    std::string_view db = rest.substr(authority.size() + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), out.db);
      if (ec != std::errc() || p != db.data() + db.size() || out.db > 15) {
        return fail("the database must be a number from 0 to 15");
      }
    }
  }
  return out;
}

}  // namespace fedproxy::config
