// The compiled policy snapshot and the per-request decision (SPEC §3, §4, §5).
//
//   compile_policy(config, manifests)  → immutable Snapshot (or every problem)
//   evaluate(snapshot, limiter, subject, request, now) → Decision
//
// evaluate() is pure over its inputs (the rate limiter is the one piece of
// mutable state, passed explicitly), does no I/O, reads no clock and does not
// allocate except when it must rewrite the request target.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/anchors.hpp"
#include "policy/limit_cell.hpp"
#include "config/config.hpp"
#include "config/manifest.hpp"
#include "config/target.hpp"

namespace fedproxy::policy {

enum class TrustLevel : uint8_t { none, verified, full };
const char* to_string(TrustLevel t);

// Error codes of SPEC §6 that policy produces.
enum class DenyCode : uint8_t {
  none,
  bad_request,          // request-target malformed: refuse_target (400)
  san_mismatch,         // no configured peer has a matching entity_uri (403, close)
  fingerprint_mismatch, // pin set and certificate differs (403, close)
  peer_blocked,         // trust_level none (403)
  peer_expired,         // peer past expires_at (403)
  unknown_grant,        // grant id from OID/Bearer not configured, or no grant for the peer (403)
  grant_inactive,       // status pending/revoked (403)
  grant_expired,        // past expires_at (403)
  grant_peer_mismatch,  // grant bound to another peer (403)
  source_not_allowed,   // source IP outside source_cidrs (403)
  method_not_allowed,   // (403)
  no_route,             // path matches no route (403)
  resource_not_granted, // (403)
  resource_excluded,    // (403)
  limit_exceeded,       // limit param above max with on_limit=reject (400)
  rate_limited,         // (429 + Retry-After)
  ambiguous_path,       // request-target refused by canonicalize_target (400)
  untrusted_issuer,     // the peer has its own trust anchors and the certificate does not chain to one (403)
  quota_exceeded,       // the grant's daily quota is used up (429 + Retry-After to the end of the UTC day)
  limits_unavailable,   // shared limit store unreachable with on_backend_failure reject (503)
};
const char* to_string(DenyCode c);  // "san_mismatch", ...

// What the TLS layer proved about the peer.
struct Subject {
  std::span<const std::string> uri_sans;
  // SHA-256 (64 lowercase hex) of the SubjectPublicKeyInfo of every CA
  // certificate of the verified chain (leaf excluded, trust anchor included):
  // checked against the peer's own trust anchors, when it has some.
  std::span<const std::string> chain_spki_sha256;
  std::string_view der_sha256;                // 64 lowercase hex
  std::optional<std::string_view> grant_oid;  // extension 1.3.6.1.4.1.99999.1
  std::string_view dev_peer;                  // insecure mode only: X-Federation-Dev-Peer slug
};

struct RequestInfo {
  std::string_view method;
  // The canonical target (canonicalize_target), never the raw one: what
  // policy decides on is what the app receives.
  std::string_view path;
  std::string_view query;          // without the "?"
  bool has_query = false;
  std::string_view authorization;  // value of the Authorization header, "" if none
  std::string_view source_ip;      // textual IPv4 or IPv6 of the TCP peer
  // Values of the method-override headers (is_method_override_header), one
  // per header line. Each must be a granted method, like the method itself.
  std::span<const std::string_view> method_overrides;

  void set_target(const config::CanonicalTarget& t) {
    path = t.path();
    query = t.query();
    has_query = t.has_query;
  }
};

// X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override: names compared
// ASCII case-insensitively with "_" read as "-" (WSGI/CGI map both to "_").
bool is_method_override_header(std::string_view name) noexcept;

struct PeerEntry;   // compiled peer (opaque here; defined in policy.cpp or an internal header)
struct GrantEntry;  // compiled grant

struct Decision {
  bool allow = false;          // forward to the app (true also for shadow-mode denials)
  DenyCode code = DenyCode::none;  // the denial (also set in shadow mode, where allow stays true)
  bool shadow = false;         // denial not enforced (enforce:false on grant or globally)
  int status = 200;            // HTTP status when denied (403, 400, 429)
  bool close_connection = false;  // identity failures: san_mismatch, fingerprint_mismatch, untrusted_issuer
  uint32_t retry_after_s = 0;  // rate_limited, quota_exceeded, limits_unavailable
  const char* message = "";    // one human sentence (static storage)
  bool strip_authorization = false;  // the Bearer fg-<id> header was used: remove it
  // Identity for headers, audit and metrics (null when not known yet).
  const PeerEntry* peer = nullptr;
  const GrantEntry* grant = nullptr;
  std::string_view entity_uri;  // the matched URI SAN
  std::string_view resource;    // resource name from the route table
  std::string_view route_prefix;  // the prefix of the route that matched (as configured)
  // max_rows: a limit parameter was above the grant's max (or not a number)
  // and was rewritten: the whole origin-form to forward, canonical path +
  // "?" + rewritten query.
  std::optional<std::string> rewritten_target;
};

// Accessors for the opaque entries (names, precomputed header values).
std::string_view peer_slug(const PeerEntry& p);
TrustLevel peer_trust(const PeerEntry& p);
std::string_view peer_allowed_regions(const PeerEntry& p);         // compact JSON array or ""
std::string_view peer_allowed_artifact_types(const PeerEntry& p);  // compact JSON array or ""
std::string_view grant_id(const GrantEntry& g);
uint32_t grant_max_rows(const GrantEntry& g);
std::string_view grant_scope_json(const GrantEntry& g);  // compact JSON of filters, "{}" if none
// Precomputed text forms, so building headers allocates nothing in policy.
std::string_view peer_entity_uri(const PeerEntry& p);      // configured entity_uri
std::string_view grant_max_rows_text(const GrantEntry& g);  // max_rows_per_query in decimal
// The grant's rate limit (rps, burst), or nullopt when it has none.
struct GrantRateLimit {
  double rps = 0;
  uint32_t burst = 0;
};
std::optional<GrantRateLimit> grant_rate_limit(const GrantEntry& g);

class Snapshot;

// Token buckets per grant and per peer: the only mutable policy state. Kept
// across reloads (buckets are matched by grant id / peer slug). Thread-safe
// and exact to within one request under concurrency.
// A limited grant of the bound snapshot with its cell: what the lease
// manager keeps supplied and /status and metrics show.
struct LimitedGrant {
  std::string id;
  LimitParams params;
  std::shared_ptr<LimitCell> cell;
};

class RateLimiter {
 public:
  RateLimiter();
  ~RateLimiter();
  // Adopt the bucket set for a new snapshot (keeps state of unchanged ids).
  void rebind(const Snapshot& snapshot);
  // Where limits are decided now (SPEC §14); local unless a lease manager
  // says otherwise. replicas: the share of a limit each replica falls back to.
  void set_mode(LimitMode mode) noexcept;
  LimitMode mode() const noexcept;
  void set_replicas(uint32_t replicas) noexcept;
  uint32_t replicas() const noexcept;
  // The limited grants of the table in use.
  std::vector<LimitedGrant> limited_grants() const;
  // Body bytes (both ways) of one finished exchange of the grant, for
  // bytes_per_day. Unknown or unlimited grants are ignored.
  void count_bytes(std::string_view grant_id, int64_t bytes, int64_t now_unix_ms);
  // Internal use by evaluate().
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

class Snapshot {
 public:
  ~Snapshot();
  size_t peer_count() const;
  size_t grant_count() const;
  // For /status: each peer's slug, trust, entity_uri, expires_at (unix s, 0 = never).
  struct PeerInfo {
    std::string slug, entity_uri, trust;
    int64_t expires_at = 0;
    std::optional<std::string> cert_fingerprint;
    std::vector<std::string> endpoints;
    std::vector<AnchorInfo> trust_anchors;     // empty: falls back to tls.ca_bundle
    std::optional<std::string> trust_domain;
  };
  std::vector<PeerInfo> peers() const;
  // Keys of CAs trusted only as some peer's anchor: a peer without anchors
  // of its own must not be reached through them (egress checks it too).
  const std::vector<std::string>& peer_only_anchor_spki() const;
  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  friend struct CompileAccess;
  explicit Snapshot(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CompileResult {
  std::shared_ptr<const Snapshot> snapshot;  // null when problems is non-empty
  std::vector<config::ConfigProblem> problems;       // every problem, with JSON path ("grants[1].resources")
};

// Validate and compile. Manifests give peers their entity_uri / endpoints /
// fingerprint / trust_domain when the peer entry does not carry them inline.
// anchors: each peer's own trust anchors, already loaded (by the certificate
// layer) from peers[].ca_bundle and the manifests' trust_bundle;
// ca_bundle_spki: the key hashes of tls.ca_bundle's CAs, what peers without
// anchors fall back to (see peer_only_anchor_spki).
CompileResult compile_policy(const config::Config& config, const std::vector<config::Manifest>& manifests,
                             const PeerAnchors& anchors = {},
                             std::span<const std::string> ca_bundle_spki = {});

Decision evaluate(const Snapshot& snapshot, RateLimiter& limiter, const Subject& subject,
                  const RequestInfo& request, int64_t now_unix_ms) noexcept;

// The answer to a request-target canonicalize_target refused (status not
// ok): 400 ambiguous_path or bad_request, before any policy step and never
// shadowed (the request is unreadable, not unauthorized).
Decision refuse_target(config::TargetStatus status) noexcept;

// Who the subject is, without authorizing anything (no grant, route or rate
// limit): the configured peer its URI SANs (or, insecure mode, its dev slug)
// name, with a matching certificate pin and a chain to its own trust anchors
// when the peer has them (else a chain through no other peer's anchors). Null when none matches, when SANs name two peers,
// or when the pin or the anchors do not match. Used to
// label requests fedproxy answers itself (the node manifest).
const PeerEntry* identify(const Snapshot& snapshot, const Subject& subject) noexcept;

}  // namespace fedproxy::policy
