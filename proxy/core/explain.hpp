// `policy explain` (SPEC §12): what fedproxy would do with a request that was
// never sent — the decision, its code, the grant and route that decided, and
// the exact target and headers the app would receive.
//
// Answered by the live request's own code, never a second implementation:
// canonicalize_target (http.path_policy), check_peer_headers, the
// PolicyAuthorizer (policy::evaluate and the identity headers) and
// forwarded_request_head (hygiene, Host, X-Request-Id, forwarding headers,
// serialization). Only the client is synthesised: a request carrying the
// given method and target, `Authorization: Bearer fg-<grant>` when a grant is
// named, from the given source address, over a certificate whose URI SAN is
// the peer's entity_uri, whose chain ends in the peer's own trust anchors (or
// the node CA) and whose fingerprint is the peer's pin when it has one.
//
// Rate limits are checked against a fresh limiter (full buckets): explain
// never takes a token from the live buckets, and says so in its output.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "policy/policy.hpp"

namespace fedproxy::core {

struct ExplainQuery {
  std::string peer;    // peer slug (an unknown one gets what an unknown certificate gets)
  std::string method;  // "GET"
  std::string target;  // the raw request-target, as a client would send it
  std::optional<std::string> grant;  // sent as "Authorization: Bearer fg-<grant>"
  std::string source = "127.0.0.1";  // the client's IP address
};

// Why a query cannot be explained (a 400 / a usage error), or nullopt.
std::optional<std::string> explain_query_problem(const ExplainQuery& query);

// What the live ingress decides with.
struct ExplainSetup {
  std::shared_ptr<const policy::Snapshot> policy;  // not null
  config::HttpConfig http;                         // path_policy, headers_with_underscores
  bool insecure = false;  // plain ingress: identity from X-Federation-Dev-Peer (SPEC §9)
  // Key hashes of tls.ca_bundle's CAs: the chain of a peer without anchors
  // of its own ends in the first one.
  std::span<const std::string> ca_bundle_spki;
};

// Placeholders for what only a real request has.
inline constexpr const char* kExplainRequestId = "<request-id>";
inline constexpr const char* kExplainHost = "<host sent by the client>";
inline constexpr const char* kExplainCertHash = "<sha256 of the client certificate>";

struct Explanation {
  bool allow = false;  // forwarded to the app (also a shadow-mode denial)
  std::string error;   // SPEC §6 code; "" = none
  int status = 200;    // fedproxy's answer when denied; 200 when forwarded
  std::string message;
  std::string peer;    // slug of the peer identified; "" = none
  std::string grant;   // the grant that decided; "" = none
  std::optional<std::pair<std::string, std::string>> route;  // (prefix, resource)
  bool shadow = false;
  bool answered_by_fedproxy = false;  // the node manifest: fedproxy answers, the app sees nothing
  // Forwarded only: the target and header section the app receives, in order.
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<policy::GrantRateLimit> rate_limit;  // the deciding grant's
};

Explanation explain(const ExplainSetup& setup, const ExplainQuery& query, int64_t now_unix_ms);

// The JSON document of SPEC §12 ({"decision": "allow"|"deny", "error": ...}), one line.
std::string explanation_json(const Explanation& e);

}  // namespace fedproxy::core
