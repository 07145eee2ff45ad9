// The host[:port] part of a URL or a Host header (RFC 3986 authority without
// userinfo): one parser for peer endpoint URLs, admin.allowed_hosts and the
// admin listener's Host check, so that all three read a host alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fedproxy::config {

struct HostPort {
  // Canonical, so that equal hosts compare equal as strings: a DNS name in
  // lower case, an IPv4 or IPv6 address as inet_ntop writes it (IPv6
  // without brackets).
  std::string host;
  bool ipv6 = false;
  std::optional<uint16_t> port;  // 1..65535 when written

  // "name", "name:port", "[v6]:port" (for messages).
  std::string to_string() const;
  bool operator==(const HostPort&) const = default;
};

// "name", "name:port", "1.2.3.4[:port]", "[v6][:port]". A name is a DNS name
// (letters, digits, '-', dots between labels; no trailing dot). nullopt with
// *error set (a phrase such as "invalid port (must be 1..65535)") otherwise.
std::optional<HostPort> parse_host(std::string_view authority, std::string* error = nullptr);

// "http://host[:port]/path": where a CRL is published (RFC 5280 §4.2.1.13
// distribution points are plain HTTP: a CRL is signed, the transport need
// not be). No userinfo, query or fragment; the path is origin-form.
struct HttpUrl {
  HostPort host;        // port defaults to 80
  std::string path;     // "/..." (at least "/")
};
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* error = nullptr);

}  // namespace fedproxy::config
