// Socket address conversion between config endpoints and sockaddr.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "config/config.hpp"

namespace fedproxy::net {

// TCP endpoints only ("localhost" maps to 127.0.0.1). False with *error set.
bool to_sockaddr(const config::Endpoint& endpoint, sockaddr_storage* out, std::string* error);

// "https://host[:port][/...]" → a TCP endpoint (port 443 by default). Syntax
// only: a DNS name stays a name (Endpoint::host), resolved at connect time
// by the loop's Resolver; an IP literal stays literal. Never blocks.
std::optional<config::Endpoint> endpoint_from_url(std::string_view url, std::string* host_header,
                                                  std::string* error);

// An IPv4 or IPv6 literal (no brackets), or "localhost": connected to
// without a lookup.
bool is_ip_literal(const std::string& host);

// "1.2.3.4:80" or "[::1]:80"; *ip (optional) gets the address alone.
std::string format_sockaddr(const sockaddr* sa, std::string* ip = nullptr);

}  // namespace fedproxy::net
