// The per-request decision point: every request passes here after its head
// is parsed and before any byte reaches the local app. The policy module
// (grants, scopes, rate limits) plugs in behind this interface.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/target.hpp"
#include "proxy/base/decision.hpp"
#include "proxy/http1/message.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::core {

class UpstreamPool;

struct RequestView {
  const tls::PeerIdentity& peer;  // verified at handshake (or restored on resumption)
  const http1::RequestHead& head;
  std::string_view source_ip;
  std::string_view request_id;
  int64_t now_unix_ms = 0;
  // Ingress: the request-target canonicalized once (SPEC §4), what policy
  // decides on and what the app receives; never head.target. Null on
  // egress, where targets are for the peer's fedproxy to canonicalize.
  const config::CanonicalTarget* target = nullptr;
};

struct Verdict {
  bool allow = true;
  // When denied: the SPEC §6 error.
  int status = 403;
  std::string code;
  std::string message;
  bool close_connection = false;   // e.g. san_mismatch closes the connection
  std::string extra_response_headers;  // preformatted, e.g. "Retry-After: 2\r\n"
  // When allowed: header lines to add for the app (after inbound identity
  // headers were stripped), preformatted as "Name: value\r\n" so the hot path
  // builds no Header objects, and an optional rewritten request-target.
  std::string header_lines;
  std::string target;  // empty = unchanged (the canonical target on ingress)
  // Egress: where to send it (null = the listener's own upstream) and the
  // Host to send (empty = unchanged).
  UpstreamPool* pool = nullptr;
  std::string host;
  // Egress failover: further endpoints in manifest order, tried when the
  // connect to `pool` fails before any byte was answered (body-less requests).
  std::vector<UpstreamPool*> fallbacks;
  bool strip_authorization = false;  // the Bearer grant token is not forwarded
  // For logs, metrics and audit (copied: the policy snapshot may be swapped
  // before the exchange ends).
  base::Decision decision = base::Decision::allow;
  std::string reason;              // error code, "" when allowed
  std::string peer;                // peer slug, "" when unknown
  std::string grant;
  std::string resource;
  std::string entity_uri;
};

// Who sent a request fedproxy answers itself (the node manifest): for logs,
// metrics and audit only, nothing is authorized. Empty when not known.
struct RequestIdentity {
  std::string peer;        // peer slug
  std::string entity_uri;  // the matched URI SAN
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual Verdict authorize(const RequestView& request) = 0;
  virtual RequestIdentity identify(const RequestView&) { return {}; }
};

// Until policy is configured: every authenticated peer is forwarded, with the
// certificate identity passed on in Envoy's X-Forwarded-Client-Cert format.
class PassThroughAuthorizer final : public Authorizer {
 public:
  Verdict authorize(const RequestView& request) override;
};

// Envoy's format: "Hash=<der sha256>;URI=<uri san>". With matched_uri, just
// that SAN (the one that identified the peer), else one URI per SAN.
std::string xfcc_value(const tls::PeerIdentity& peer, std::string_view matched_uri = {});
// Appends the X-Forwarded-Client-Cert line itself (no temporary string).
void append_xfcc_line(std::string& lines, const tls::PeerIdentity& peer, std::string_view matched_uri = {});
// Appends "name: value\r\n" unless value is empty.
void append_header_line(std::string& lines, std::string_view name, std::string_view value);

}  // namespace fedproxy::core
