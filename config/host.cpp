#include "config/host.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/validate.hpp"

namespace fedproxy::config {

std::string HostPort::to_string() const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  if (port) out += ":" + std::to_string(*port);
  return out;
}

std::optional<HostPort> parse_host(std::string_view authority, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<HostPort> {
    if (error) *error = why;
    return std::nullopt;
  };
  HostPort out;
  std::string host;
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated '['");
    host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("unexpected characters after ']'");
      port = after.substr(1);
      has_port = true;
    }
    in6_addr a{};
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, host.c_str(), &a) != 1 || !inet_ntop(AF_INET6, &a, text, sizeof text)) {
      return fail("invalid IPv6 address");
    }
    out.host = text;
    out.ipv6 = true;
  } else {
    size_t colon = authority.rfind(':');
    host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
    in_addr a{};
    char text[INET_ADDRSTRLEN];
    if (inet_pton(AF_INET, host.c_str(), &a) == 1 && inet_ntop(AF_INET, &a, text, sizeof text)) {
      out.host = text;
    } else if (detail::is_dns_name(host)) {
      for (char& c : host) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      out.host = std::move(host);
    } else {
      return fail("invalid host");
    }
  }
  if (has_port) {
    if (port.empty()) return fail("empty port");
    uint16_t p = 0;
    if (!detail::parse_port(port, &p) || p == 0) return fail("invalid port (must be 1..65535)");
    out.port = p;
  }
  return out;
}

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<HttpUrl> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!url.starts_with("http://")) {
    return fail("must be an http:// URL such as \"http://crl.example/ca.crl\" (got " + detail::quote(url) + ")");
  }
  std::string_view rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return fail("must not carry userinfo (got " + detail::quote(url) + ")");
  for (char c : path) {
    if (c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return fail("must be a plain path without query, fragment, spaces or control bytes (got " + detail::quote(url) + ")");
    }
  }
  std::string why;
  auto host = parse_host(authority, &why);
  if (!host) return fail(why + " in " + detail::quote(url));
  HttpUrl out{std::move(*host), std::string(path)};
  if (!out.host.port) out.host.port = 80;
  return out;
}

}  // namespace fedproxy::config
