#include "proxy/net/address.hpp"

#include <arpa/inet.h>
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

}  // namespace fedproxy::net
