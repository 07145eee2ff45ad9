// Socket address conversion between config endpoints and sockaddr.
#pragma once

#include <string>

#include <sys/socket.h>

#include "policy/config.hpp"

namespace fedproxy::net {

// TCP endpoints only ("localhost" maps to 127.0.0.1). False with *error set.
bool to_sockaddr(const policy::Endpoint& endpoint, sockaddr_storage* out, std::string* error);

// "1.2.3.4:80" or "[::1]:80"; *ip (optional) gets the address alone.
std::string format_sockaddr(const sockaddr* sa, std::string* ip = nullptr);

}  // namespace fedproxy::net
