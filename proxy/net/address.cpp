#include "proxy/net/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <uv.h>

namespace fedproxy::net {

bool to_sockaddr(const policy::Endpoint& endpoint, sockaddr_storage* out, std::string* error) {
  std::string host = endpoint.host == "localhost" ? "127.0.0.1" : endpoint.host;
  if (host.find(':') != std::string::npos) {
    if (uv_ip6_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in6*>(out)) == 0) return true;
  } else if (uv_ip4_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in*>(out)) == 0) {
    return true;
  }
  if (error) *error = "not an IP address: " + endpoint.text;
  return false;
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

std::optional<policy::Endpoint> endpoint_from_url(std::string_view url, std::string* host_header,
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
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = "endpoint " + std::string(url) + ": cannot resolve " + host + ": " + gai_strerror(rc);
    return std::nullopt;
  }
  std::string ip;
  std::string text = format_sockaddr(res->ai_addr, &ip);
  freeaddrinfo(res);
  policy::Endpoint ep;
  ep.kind = policy::Endpoint::Kind::tcp;
  ep.host = ip;
  ep.port = static_cast<uint16_t>(std::stoi(port));
  ep.text = text;
  return ep;
}

}  // namespace fedproxy::net
