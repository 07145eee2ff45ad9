#include "proxy/core/explain.hpp"

#include <arpa/inet.h>

#include <cstdio>

#include <string_view>

#include "config/json.hpp"
#include "config/target.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/forwarded_head.hpp"
#include "proxy/core/header_rules.hpp"
#include "proxy/core/policy_authorizer.hpp"
#include "proxy/http1/message.hpp"
#include "proxy/http1/serializer.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::core {

namespace {

constexpr size_t kMaxMethod = 32;
constexpr size_t kMaxTarget = 8192;  // the default request-line limit

bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// What a client's request line and headers could carry at all: no control
// byte, no space (the parser would refuse the request before policy).
bool is_line_safe(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The certificate a configured peer would present: its entity_uri as URI
// SAN, its pin as the DER hash, a chain through its own first anchor (or the
// node CA). An unknown slug gets a certificate that names nobody.
tls::PeerIdentity synthesise_identity(const ExplainSetup& setup, const std::string& slug) {
  tls::PeerIdentity id;
  id.present = !setup.insecure;
  id.der_sha256 = kExplainCertHash;
  if (setup.insecure) return id;
  for (const auto& p : setup.policy->peers()) {
    if (p.slug != slug) continue;
    id.uri_sans.push_back(p.entity_uri);
    if (p.cert_fingerprint) id.der_sha256 = *p.cert_fingerprint;
    if (!p.trust_anchors.empty()) {
      id.chain_spki_sha256.push_back(p.trust_anchors.front().spki_sha256);
    } else if (!setup.ca_bundle_spki.empty()) {
      id.chain_spki_sha256.push_back(setup.ca_bundle_spki.front());
    }
    break;
  }
  return id;
}

// The request line's target and the header fields of a serialized head.
void read_back(std::string_view bytes, Explanation& e) {
  size_t eol = bytes.find("\r\n");
  std::string_view line = bytes.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 != std::string_view::npos && sp2 > sp1) e.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  size_t pos = eol == std::string_view::npos ? bytes.size() : eol + 2;
  while (pos < bytes.size()) {
    eol = bytes.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) break;  // the empty line ends the head
    std::string_view field = bytes.substr(pos, eol - pos);
    size_t colon = field.find(':');
    std::string_view value = colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    e.headers.emplace_back(std::string(field.substr(0, colon)), std::string(value));
    pos = eol + 2;
  }
}

void deny(Explanation& e, int status, std::string_view code, std::string message) {
  e.allow = false;
  e.status = status;
  e.error = code;
  e.message = std::move(message);
}

}  // namespace

std::optional<std::string> explain_query_problem(const ExplainQuery& q) {
  if (q.peer.empty()) return "peer is missing";
  if (!is_line_safe(q.peer)) return "peer holds a space or a control byte";
  if (q.method.empty()) return "method is missing";
  if (q.method.size() > kMaxMethod) return "method is longer than 32 bytes";
  for (unsigned char c : q.method) {
    if (!is_tchar(c)) return "method is not an HTTP method token";
  }
  if (q.target.empty()) return "target is missing";
  if (q.target.size() > kMaxTarget) return "target is longer than 8192 bytes";
  if (!is_line_safe(q.target)) return "target holds a space or a control byte (no request line can carry it)";
  if (q.grant && (q.grant->empty() || !is_line_safe(*q.grant))) return "grant is empty or holds a space or a control byte";
  if (!is_ip(q.source)) return "source is not an IPv4 or IPv6 address";
  return std::nullopt;
}

Explanation explain(const ExplainSetup& setup, const ExplainQuery& q, int64_t now_unix_ms) {
  Explanation e;
  const tls::PeerIdentity identity = synthesise_identity(setup, q.peer);
  http1::RequestHead head;
  head.method = q.method;
  head.target = q.target;
  head.headers.push_back({"Host", kExplainHost});
  if (q.grant) head.headers.push_back({"Authorization", "Bearer fg-" + *q.grant});
  if (setup.insecure) head.headers.push_back({"X-Federation-Dev-Peer", q.peer});

  // The session's steps, in its order (ProxySession::on_request_head).
  PolicyAuthorizer authorizer(setup.policy, setup.insecure);  // its own limiter: full buckets
  RequestView view{identity, head, q.source, kExplainRequestId, now_unix_ms, nullptr};
  config::TargetResult canonical = config::canonicalize_target(q.target, q.method, setup.http.path_policy);
  if (canonical.status != config::TargetStatus::ok) {
    const policy::Decision d = policy::refuse_target(canonical.status);
    deny(e, d.status, policy::to_string(d.code), target_refusal_message(d.message, canonical.detail));
    e.peer = authorizer.identify(view).peer;
    return e;
  }
  view.target = &canonical.target;
  if (const char* why = check_peer_headers(head.headers, setup.http.headers_with_underscores)) {
    deny(e, 400, "bad_request", why);
    e.peer = authorizer.identify(view).peer;
    return e;
  }
  if (canonical.target.path() == "/.well-known/fedproxy-manifest.json" && (q.method == "GET" || q.method == "HEAD")) {
    e.allow = true;
    e.answered_by_fedproxy = true;
    e.message = "fedproxy answers this request itself with its node manifest; it never reaches the app.";
    e.peer = authorizer.identify(view).peer;
    return e;
  }

  policy::Decision d = authorizer.decide(view);
  if (d.peer) e.peer = policy::peer_slug(*d.peer);
  if (d.grant) {
    e.grant = policy::grant_id(*d.grant);
    e.rate_limit = policy::grant_rate_limit(*d.grant);
  }
  if (!d.resource.empty()) e.route.emplace(std::string(d.route_prefix), std::string(d.resource));
  e.shadow = d.shadow;
  if (d.code != policy::DenyCode::none) e.error = policy::to_string(d.code);
  const std::string shadow_message = d.shadow ? d.message : "";
  Verdict v = authorizer.to_verdict(std::move(d), view);
  if (!v.allow) {
    deny(e, v.status, v.code, v.message);
    return e;
  }
  e.allow = true;
  e.status = 200;
  e.message = e.shadow ? "Shadow mode: forwarded although policy would deny it (" + shadow_message + ")"
                       : std::string("Forwarded to the app.");
  std::string forwarding;
  append_forwarding_lines(forwarding, q.source, !setup.insecure);
  const bool upgrade = http1::is_websocket_upgrade(head);
  read_back(forwarded_request_head(head, v, &canonical.target, kExplainRequestId, forwarding, upgrade), e);
  return e;
}

std::string explanation_json(const Explanation& e) {
  using config::json::quote;
  auto or_null = [](const std::string& s) { return s.empty() ? std::string("null") : quote(s); };
  std::string j = "{\"decision\":";
  j += e.allow ? "\"allow\"" : "\"deny\"";
  j += ",\"error\":" + or_null(e.error);
  j += ",\"status\":" + std::to_string(e.status);
  j += ",\"message\":" + quote(e.message);
  j += ",\"peer\":" + or_null(e.peer);
  j += ",\"grant\":" + or_null(e.grant);
  j += ",\"route\":";
  j += e.route ? "{\"prefix\":" + quote(e.route->first) + ",\"resource\":" + quote(e.route->second) + "}"
               : std::string("null");
  const bool forwarded = e.allow && !e.answered_by_fedproxy;
  j += ",\"target\":" + (forwarded ? quote(e.target) : std::string("null"));
  j += ",\"headers\":[";
  for (size_t i = 0; i < e.headers.size(); ++i) {
    j += (i ? ",[" : "[") + quote(e.headers[i].first) + "," + quote(e.headers[i].second) + "]";
  }
  j += "]";
  j += std::string(",\"shadow\":") + (e.shadow ? "true" : "false");
  j += std::string(",\"answered_by_fedproxy\":") + (e.answered_by_fedproxy ? "true" : "false");
  j += ",\"rate_limit\":";
  if (e.rate_limit) {
    char rps[32];
    std::snprintf(rps, sizeof rps, "%g", e.rate_limit->rps);
    j += std::string("{\"rps\":") + rps + ",\"burst\":" + std::to_string(e.rate_limit->burst) +
         ",\"simulated\":false,\"note\":\"checked against a full bucket; the live buckets' state is not "
         "simulated and no token was taken from them\"}";
  } else {
    j += "null";
  }
  j += ",\"placeholders\":{\"request_id\":" + quote(kExplainRequestId) + ",\"host\":" + quote(kExplainHost) +
       ",\"certificate_hash\":" + quote(kExplainCertHash) + "}";
  j += "}";
  return j;
}

}  // namespace fedproxy::core
