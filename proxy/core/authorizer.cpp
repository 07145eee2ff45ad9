#include "proxy/core/authorizer.hpp"

namespace fedproxy::core {

std::string xfcc_value(const tls::PeerIdentity& peer, std::string_view matched_uri) {
  std::string v = "Hash=" + peer.der_sha256;
  if (!matched_uri.empty()) {
    v += ";URI=";
    v += matched_uri;
    return v;
  }
  for (const auto& uri : peer.uri_sans) v += ";URI=" + uri;
  return v;
}

void append_header_line(std::string& lines, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  lines.append(name);
  lines.append(": ", 2);
  lines.append(value);
  lines.append("\r\n", 2);
}

void append_xfcc_line(std::string& lines, const tls::PeerIdentity& peer, std::string_view matched_uri) {
  lines.append("X-Forwarded-Client-Cert: Hash=");
  lines.append(peer.der_sha256);
  if (!matched_uri.empty()) {
    lines.append(";URI=");
    lines.append(matched_uri);
  } else {
    for (const auto& uri : peer.uri_sans) lines.append(";URI=").append(uri);
  }
  lines.append("\r\n", 2);
}

Verdict PassThroughAuthorizer::authorize(const RequestView& request) {
  Verdict v;
  if (request.peer.present) append_xfcc_line(v.header_lines, request.peer);
  return v;
}

}  // namespace fedproxy::core
