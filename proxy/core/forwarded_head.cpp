#include "proxy/core/forwarded_head.hpp"

#include <vector>

#include "proxy/core/header_rules.hpp"
#include "proxy/http1/serializer.hpp"

namespace fedproxy::core {

std::string forwarded_request_head(http1::RequestHead& head, Verdict& verdict,
                                   const config::CanonicalTarget* target, std::string_view request_id,
                                   std::string_view forwarding_lines, bool upgrade) {
  http1::remove_hop_by_hop(head.headers);
  strip_peer_asserted_headers(head.headers);
  const bool strip_auth = verdict.strip_authorization;
  std::erase_if(head.headers, [strip_auth](const http1::Header& h) {
    return http1::iequals(h.name, "x-request-id") || (strip_auth && http1::iequals(h.name, "authorization"));
  });
  // The Host to send: the egress peer's, or on ingress the authority of an
  // absolute-form target (RFC 9112 §3.2.2); else the peer's own.
  const std::string_view host = !verdict.host.empty() ? std::string_view(verdict.host)
                                : target               ? std::string_view(target->authority)
                                                       : std::string_view();
  std::string& lines = verdict.header_lines;
  // One allocation at most: Host, X-Request-Id and the forwarding lines.
  lines.reserve(lines.size() + host.size() + request_id.size() + forwarding_lines.size() + 40);
  if (!host.empty()) {
    std::erase_if(head.headers, [](const http1::Header& h) { return http1::iequals(h.name, "host"); });
    append_header_line(lines, "Host", host);
  }
  append_header_line(lines, "X-Request-Id", request_id);
  lines += forwarding_lines;
  // What was authorized, byte for byte: the limit rewrite, else the
  // canonical target; the raw target only on egress.
  const std::string_view sent = !verdict.target.empty() ? std::string_view(verdict.target)
                                : target                ? std::string_view(target->text)
                                                        : std::string_view(head.target);
  std::string bytes;
  http1::write_request_head(head, sent,
                            upgrade ? http1::ConnectionLine::websocket_upgrade : http1::ConnectionLine::keep_alive,
                            bytes, lines);
  return bytes;
}

std::string target_refusal_message(std::string_view decision_message, std::string_view detail) {
  std::string message(decision_message);
  if (!message.empty()) message.back() = ':';
  message.append(" ").append(detail).append(".");
  return message;
}

}  // namespace fedproxy::core
