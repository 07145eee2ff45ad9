// Socket address conversion between config endpoints and sockaddr.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "policy/config.hpp"

namespace fedproxy::net {

// TCP endpoints only ("localhost" maps to 127.0.0.1). False with *error set.
bool to_sockaddr(const policy::Endpoint& endpoint, sockaddr_storage* out, std::string* error);

// "https://host[:port][/...]" → a TCP endpoint (port 443 by default). A DNS
// name is resolved here with getaddrinfo, i.e. blocking: call it when
// (re)loading configuration, never per request.
std::optional<policy::Endpoint> endpoint_from_url(std::string_view url, std::string* host_header,
                                                  std::string* error);

// "1.2.3.4:80" or "[::1]:80"; *ip (optional) gets the address alone.
std::string format_sockaddr(const sockaddr* sa, std::string* ip = nullptr);

}  // namespace fedproxy::net
