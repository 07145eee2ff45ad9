#include "proxy/core/header_rules.hpp"

#include <algorithm>

namespace fedproxy::core {

namespace {

// Fields whose removal by a "Connection: <name>" token would change what the
// app is told: the request's target host, its framing, its credentials, its
// id and its federation identity.
bool connection_may_not_name(std::string_view token) {
  return http1::iequals(token, "host") || http1::iequals(token, "content-length") ||
         http1::iequals(token, "transfer-encoding") || http1::iequals(token, "authorization") ||
         http1::iequals(token, "x-request-id") || http1::istarts_with(token, "x-federation-");
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool names_protected_field(std::string_view connection_value) {
  std::string_view v = connection_value;
  for (;;) {
    const size_t comma = v.find(',');
    if (connection_may_not_name(trim_ows(v.substr(0, comma)))) return true;
    if (comma == std::string_view::npos) return false;
    v.remove_prefix(comma + 1);
  }
}

bool has_underscore(const http1::Header& h) { return h.name.find('_') != std::string::npos; }

}  // namespace

const char* check_peer_headers(http1::Headers& headers, UnderscoreHeaders underscores) {
  unsigned authorization = 0;
  bool underscore = false;
  for (const http1::Header& h : headers) {
    underscore = underscore || has_underscore(h);
    if (http1::iequals(h.name, "authorization") && ++authorization > 1) {
      return "The request has more than one Authorization header.";
    }
    if (http1::iequals(h.name, "connection") && names_protected_field(h.value)) {
      return "The Connection header names a field that must reach the application (Host, "
             "Content-Length, Transfer-Encoding, Authorization, X-Request-Id or X-Federation-*).";
    }
  }
  if (underscore) {
    switch (underscores) {
      case UnderscoreHeaders::reject:
        return "A header name contains an underscore (http.headers_with_underscores is \"reject\").";
      case UnderscoreHeaders::drop:
        std::erase_if(headers, has_underscore);
        break;
      case UnderscoreHeaders::allow:
        break;
    }
  }
  return nullptr;
}

namespace {

bool is_peer_asserted(std::string_view n) {
  return http1::istarts_with(n, "x-federation-") || http1::iequals(n, "x-forwarded-client-cert") ||
         http1::iequals(n, "client-cert") || http1::iequals(n, "client-cert-chain") ||
         http1::istarts_with(n, "x-forwarded-") || http1::iequals(n, "forwarded") ||
         http1::iequals(n, "x-real-ip") || http1::iequals(n, "x-client-ip") ||
         http1::iequals(n, "true-client-ip") || http1::iequals(n, "x-original-url") ||
         http1::iequals(n, "x-rewrite-url");
}

}  // namespace

void strip_peer_asserted_headers(http1::Headers& headers) {
  std::erase_if(headers, [](const http1::Header& h) {
    if (h.name.find('_') == std::string::npos) return is_peer_asserted(h.name);
    // Names with "_" are here only under headers_with_underscores "allow":
    // judge them as the WSGI/CGI app will read them, with "_" as "-".
    std::string dashed = h.name;
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    return is_peer_asserted(dashed);
  });
}

void append_forwarding_lines(std::string& lines, std::string_view ip, bool tls) {
  const std::string_view proto = tls ? "https" : "http";
  const bool v6 = ip.find(':') != std::string_view::npos;
  lines.append("X-Forwarded-For: ").append(ip).append("\r\n");
  lines.append("X-Forwarded-Proto: ").append(proto).append("\r\n");
  // RFC 7239 §6: an IPv6 node is a quoted, bracketed string.
  lines.append("Forwarded: for=");
  if (v6) {
    lines.append("\"[").append(ip).append("]\"");
  } else {
    lines.append(ip);
  }
  lines.append(";proto=").append(proto).append("\r\n");
}

}  // namespace fedproxy::core
