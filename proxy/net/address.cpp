#include "proxy/net/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstdint>

#include <uv.h>

namespace fedproxy::net {

bool to_sockaddr(const config::Endpoint& endpoint, sockaddr_storage* out, std::string* error) {
  std::string host = endpoint.host == "localhost" ? "127.0.0.1" : endpoint.host;
  if (host.find(':') != std::string::npos) {
    if (uv_ip6_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in6*>(out)) == 0) return true;
  } else if (uv_ip4_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in*>(out)) == 0) {
    return true;
  }
  if (error) *error = "not an IP address: " + endpoint.text;
  return false;
}

bool is_ip_literal(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char buf[sizeof(in6_addr)];
  return uv_inet_pton(AF_INET, host.c_str(), buf) == 0 || uv_inet_pton(AF_INET6, host.c_str(), buf) == 0;
}

std::string format_sockaddr(const sockaddr* sa, std::string* ip) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, buf, sizeof(buf));
    if (ip) *ip = buf;
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  uv_ip4_name(in4, buf, sizeof(buf));
  if (ip) *ip = buf;
  return std::string(buf) + ":" + std::to_string(ntohs(in4->sin_port));
}

std::optional<config::Endpoint> endpoint_from_url(std::string_view url, std::string* host_header,
                                                  std::string* error) {
  std::string_view rest = url;
  if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
  } else {
    *error = "endpoint " + std::string(url) + " is not an https:// URL";
    return std::nullopt;
  }
  rest = rest.substr(0, rest.find('/'));
  *host_header = std::string(rest);
  std::string host;
  std::string port = "443";
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "endpoint " + std::string(url) + ": unclosed [";
      return std::nullopt;
    }
    host = std::string(rest.substr(1, close - 1));
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = std::string(rest.substr(close + 2));
  } else {
    size_t colon = rest.rfind(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = std::string(rest.substr(colon + 1));
  }
  if (host.empty()) {
    *error = "endpoint " + std::string(url) + ": missing host";
    return std::nullopt;
  }
  uint32_t port_number = 0;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      (port_number = static_cast<uint32_t>(std::stoul(port))) == 0 || port_number > 65535) {
    *error = "endpoint " + std::string(url) + ": invalid port \"" + port + "\"";
    return std::nullopt;
  }
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!is_ip_literal(host)) {
    // A DNS name: letters, digits, '-', '_' and dots (no lookup here).
    if (host.size() > 253 || host.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") != std::string::npos) {
      *error = "endpoint " + std::string(url) + ": invalid host name \"" + host + "\"";
      return std::nullopt;
    }
  } else if (host.find(':') != std::string::npos && (rest.empty() || rest.front() != '[')) {
    *error = "endpoint " + std::string(url) + ": IPv6 addresses must be written in brackets";
    return std::nullopt;
  }
  config::Endpoint ep;
  ep.kind = config::Endpoint::Kind::tcp;
  ep.host = host;
  ep.port = static_cast<uint16_t>(port_number);
  ep.text = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  return ep;
}

}  // namespace fedproxy::net
