// The configuration file model (SPEC §11): parsed from JSON, validated, with
// relative paths resolved against the config file's directory.
// Pure: no I/O besides reading the config file itself in load_config_file().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/grant.hpp"
#include "config/host.hpp"
#include "config/peer.hpp"
#include "config/redis_url.hpp"
#include "config/problem.hpp"
#include "config/target.hpp"

namespace fedproxy::config {

// A listen or upstream address: "host:port", "[v6]:port" or "unix:/path".
struct Endpoint {
  enum class Kind { tcp, unix_socket };
  Kind kind = Kind::tcp;
  // for tcp: literal IPv4/IPv6 address (no brackets) or "localhost"; peer
  // endpoints (manifests, never the config's own addresses) may hold a DNS
  // name, resolved at connect time (proxy/net/resolver.hpp)
  std::string host;
  uint16_t port = 0;  // 0 = let the kernel choose (tests use this)
  std::string path;   // for unix_socket
  std::string text;   // as written in the config, for messages
  bool is_loopback() const;  // 127.0.0.0/8, ::1, localhost, or any unix socket
};

struct NodeConfig {
  std::string org;         // slug
  std::string entity_uri;  // the node's own URI SAN
  // Where peers reach this node's ingress (https://host:port), published in
  // the node manifest; optional.
  std::vector<std::string> endpoints;
  // The CA(s) that issue this node's certificates, published as its trust
  // bundle (/.well-known/fedproxy-bundle.json): absolute, "" = those CAs of
  // tls.ca_bundle that the node certificate chains to. During a CA rotation
  // it holds the old and the new CA.
  std::string ca_bundle;
  // How often peers should fetch that bundle again (its spiffe_refresh_hint).
  uint32_t bundle_refresh_hint_s = 300;
};

struct TlsFiles {
  std::string cert;       // absolute path, "" = not configured (insecure mode)
  std::string key;
  std::string ca_bundle;
  std::string crl;        // "" = none
  // CRL distribution points (http:// URLs), fetched at start, every
  // crl_refresh_ms and at each CRL's nextUpdate; held in memory and loaded
  // with tls.crl. Until a URL's first CRL arrives, ingress fails closed
  // (unless crl_fail_open), as with a stale CRL.
  std::vector<std::string> crl_urls;
  uint32_t crl_refresh_ms = 3600000;
  bool crl_fail_open = false;
  uint32_t watch_interval_ms = 5000;
  uint32_t ticket_rotation_ms = 3600000;  // session-ticket key rotation period
  bool session_tickets = true;
};

struct IngressConfig {
  Endpoint listen;    // default 0.0.0.0:8443
  Endpoint upstream;  // default 127.0.0.1:8080
  uint32_t upstream_pool_max_idle = 256;  // idle keep-alive upstream connections kept
};

struct EgressConfig {
  std::optional<Endpoint> listen;  // default 127.0.0.1:15001; null disables egress
  bool allow_non_loopback = false;
  // Peer liveness (SPEC §7 "peers.heartbeat_interval"): how often each
  // peer's manifest is fetched over mTLS.
  uint32_t heartbeat_interval_ms = 60000;
  // Peer endpoints named by DNS are resolved at connect time, off the loop
  // (never at load), and cached per worker: a successful answer for
  // dns_ttl_ms (getaddrinfo reports no TTL), a failure for
  // dns_negative_ttl_ms. 0 = no caching (concurrent lookups still coalesce).
  uint32_t dns_ttl_ms = 30000;
  uint32_t dns_negative_ttl_ms = 5000;
};

// One admin bearer token (SPEC §10, §12): read from `path` with every
// snapshot (proxy/app), never here. The name is the actor of what the token
// does (logs, audit events).
struct AdminTokenFile {
  std::string name;   // "admin" for admin.token_file, else admin.tokens[i].name
  std::string path;   // absolute
  std::string where;  // "admin.token_file" or "admin.tokens[1].file", for messages
};

struct AdminConfig {
  // default 127.0.0.1:9901; null disables admin; may be "unix:/path.sock"
  std::optional<Endpoint> listen;
  std::vector<AdminTokenFile> tokens;  // empty: the admin API is open (check warns)
  // Host names (optionally with a port) the admin listener answers besides
  // its own address and localhost (DNS-rebinding defence).
  std::vector<HostPort> allowed_hosts;
};

struct RouteConfig {
  std::string prefix;
  std::string resource;
  bool sensitive = false;
};

// http (SPEC §4, §5): how ingress reads request-targets and header names.
struct HttpConfig {
  PathPolicy path_policy = PathPolicy::reject;  // "reject" | "rewrite"
  // A header name holding "_" (WSGI/CGI read "_" and "-" alike):
  enum class Underscores : uint8_t {
    reject,  // 400 bad_request
    drop,    // the header is removed
    allow,   // forwarded
  };
  Underscores headers_with_underscores = Underscores::reject;
};

struct AuditConfig {
  std::string path;  // "" = no audit log
  // What fedproxy does while audit lines cannot be written (SPEC §10):
  enum class OnFailure : uint8_t {
    reject,     // "reject": fail closed, 503 audit_unavailable and /readyz 503
    continue_,  // "continue": serve, and write a "gap" event once writing works again
  };
  OnFailure on_failure = OnFailure::reject;
};

const char* to_string(AuditConfig::OnFailure f);

// rate_limits (SPEC §14): where per-grant rate limits and quotas are kept.
struct RateLimitsConfig {
  enum class Backend : uint8_t { local, redis };
  Backend backend = Backend::local;
  std::optional<RedisUrl> redis;  // set (and required) with backend redis
  uint32_t replicas = 1;          // 1..1000: the fallback share is limit / replicas
  enum class OnFailure : uint8_t {
    local,   // "local": buckets of limit / replicas until Redis is back
    reject,  // "reject": 503 limits_unavailable for limited grants
  };
  OnFailure on_backend_failure = OnFailure::local;
  bool operator==(const RateLimitsConfig&) const = default;
};

struct LimitsConfig {
  uint32_t max_connections = 10000;
  uint32_t max_header_bytes = 16384;
  uint32_t max_request_line_bytes = 8192;
  uint32_t max_header_count = 100;
  uint64_t max_conn_lifetime_ms = 0;  // 0 = off
  uint32_t max_requests_per_conn = 0; // 0 = unlimited
  // Chunk extensions of a request body (SPEC §1): per chunk, per message.
  uint32_t max_chunk_extension_bytes = 1024;
  uint32_t max_chunk_extension_bytes_per_message = 16384;
};

struct TimeoutsConfig {
  uint32_t handshake_ms = 10000;
  uint32_t header_ms = 10000;
  uint32_t idle_ms = 60000;
  uint32_t upstream_connect_ms = 5000;
  uint32_t upstream_response_ms = 60000;
  uint32_t tunnel_idle_ms = 300000;  // a WebSocket tunnel without a byte either way
  uint32_t shutdown_grace_ms = 10000;
};

struct Config {
  std::string path;  // absolute path of the file this came from ("" if from a string)
  std::string dir;   // its directory, base for relative paths
  NodeConfig node;
  TlsFiles tls;
  IngressConfig ingress;
  EgressConfig egress;
  AdminConfig admin;
  unsigned workers = 1;  // "auto" = hardware concurrency
  std::string manifests_dir;  // absolute, "" = none
  std::vector<PeerConfig> peers;
  std::vector<RouteConfig> routes;
  // Every grants[i] that is an object with a string id, typed (parse_grant).
  std::vector<Grant> grants;
  // The field problems parse_grant found in those grants. They are not
  // ConfigResult::problems: a grant is policy, and compile_policy reports
  // them with the problems only the whole snapshot shows (an unknown peer
  // or resource), grant by grant and field by field.
  std::vector<ConfigProblem> grant_problems;
  HttpConfig http;
  AuditConfig audit;
  // state.path (SPEC §12): the peers and grants changed through the
  // management API, overlaid on this file; absolute, "" = none.
  std::string state_path;
  // peering.listen (SPEC §13): the join listener (TLS, server-authenticated
  // only); nullopt = off.
  std::optional<Endpoint> peering_listen;
  RateLimitsConfig rate_limits;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  bool enforce = true;       // global shadow-mode switch (SPEC §4)
  // No peer/grant policy: forward every client whose certificate verifies
  // (a plain mTLS terminator, like ghostunnel --allow-all). Must be explicit:
  // without peers and without this, fedproxy refuses to start.
  bool authenticate_only = false;
  // One `request` JSON log line per request on stderr (the access log).
  // Metrics and the audit log do not depend on it.
  bool log_requests = true;
  std::string limit_param = "limit";
  std::string on_limit = "rewrite";  // rewrite | reject
};

struct ConfigResult {
  std::optional<Config> config;        // set only when problems is empty
  std::vector<ConfigProblem> problems; // every problem found, not just the first
  // When the JSON parsed but some values were invalid: everything that was
  // valid, so `fedproxy check` can go on to report policy problems too.
  // Never used to run.
  std::optional<Config> partial;
};

// Environment overrides of SPEC §8 (FEDPROXY_TLS_CERT_PATH, ...). Passed in
// explicitly so parsing stays a pure function.
struct EnvOverrides {
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_ca_bundle;
  static EnvOverrides from_environment();
};

// Parse and validate config JSON text. base_dir resolves relative paths.
ConfigResult parse_config(const std::string& json_text, const std::string& base_dir,
                          const EnvOverrides& env = {});

// Read the file and parse it. A read failure is one problem with where = path.
ConfigResult load_config_file(const std::string& path, const EnvOverrides& env = {});

// Parse "host:port", "[v6]:port", "unix:/path". Returns nullopt with *error set.
std::optional<Endpoint> parse_endpoint(const std::string& text, std::string* error);

}  // namespace fedproxy::config
