// Configuration file loading (SPEC §11): strict JSON parse → validate every
// key with its JSON location → Config. Every problem is collected; a Config is
// returned only when there are none. No exception leaves this file.

#include "config/config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <picojson.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "config/grant.hpp"
#include "config/json.hpp"
#include "config/peer.hpp"
#include "config/reader.hpp"
#include "config/target.hpp"
#include "config/validate.hpp"

namespace fedproxy::config {

namespace fs = std::filesystem;
using detail::parse_port;
using detail::peer_url_error;
using detail::quote;
using detail::slug_error;
using detail::trust_domain_error;
using detail::type_name;
using picojson::array;
using picojson::object;
using picojson::value;

// ---------------------------------------------------------------------------
// Small helpers shared by endpoint parsing and validation.
namespace {

constexpr size_t kMaxJsonDepth = 64;
constexpr size_t kMaxConfigFileBytes = 16u << 20;  // 16 MiB: a config, not a data set
constexpr size_t kMaxUnixPathBytes = 107;           // sizeof(sockaddr_un::sun_path) - 1

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Config files put no length cap on entity URIs (manifests do).
std::optional<std::string> uri_error(std::string_view s) {
  return detail::uri_error(s, std::string_view::npos);
}

bool is_ipv4_literal(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6_literal(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

// ---------------------------------------------------------------------------
// Strict JSON parsing (config/json.hpp). Syntax errors become one problem
// naming line and column; duplicate keys become problems at their location
// and validation goes on (every problem is listed); a number that overflows
// a double makes validating the document pointless.
using json::index_path;
using json::key_path;

bool parse_json_strict(const std::string& text, value* out, std::vector<ConfigProblem>* problems) {
  std::vector<json::Problem> found;
  json::ReadOptions options;
  options.max_depth = kMaxJsonDepth;
  bool usable = json::read_strict(text, out, &found, options);
  for (json::Problem& p : found) {
    if (p.kind != json::Problem::Kind::duplicate_key) usable = false;
    problems->push_back({std::move(p.where), std::move(p.message)});
  }
  return usable;
}

// ---------------------------------------------------------------------------
// Key sets, per level.

const std::vector<std::string_view> kTopKeys = {
    "node",     "tls",    "ingress",  "egress",  "admin",     "workers",
    "manifests_dir", "peers", "routes", "grants", "http",    "audit",   "limits",
    "timeouts", "shutdown_grace_ms", "enforce", "authenticate_only", "limit_param", "on_limit",
    "log_requests", "$schema",  "_comment", "state", "peering", "rate_limits"};
const std::vector<std::string_view> kNodeKeys = {"org", "entity_uri", "endpoints", "ca_bundle",
                                                 "bundle_refresh_hint_s"};
const std::vector<std::string_view> kTlsKeys = {
    "cert",  "key", "ca_bundle", "crl", "crl_fail_open", "watch_interval_ms",
    "ticket_rotation_ms", "session_tickets", "crl_urls", "crl_refresh_ms"};
const std::vector<std::string_view> kIngressKeys = {"listen", "upstream",
                                                    "upstream_pool_max_idle"};
const std::vector<std::string_view> kEgressKeys = {"listen", "allow_non_loopback", "heartbeat_interval_ms",
                                                   "dns_ttl_ms", "dns_negative_ttl_ms"};
const std::vector<std::string_view> kAdminKeys = {"listen", "token_file", "tokens", "allowed_hosts"};
const std::vector<std::string_view> kAdminTokenKeys = {"name", "file"};
// The actor of admin.token_file (admin.tokens name theirs).
constexpr std::string_view kTokenFileActor = "admin";
const std::vector<std::string_view> kRouteKeys = {"prefix", "resource", "sensitive"};
const std::vector<std::string_view> kHttpKeys = {"path_policy", "headers_with_underscores"};
const std::vector<std::string_view> kPathPolicies = {"reject", "rewrite"};
const std::vector<std::string_view> kUnderscoreHeaders = {"reject", "drop", "allow"};
const std::vector<std::string_view> kAuditKeys = {"path", "on_failure"};
const std::vector<std::string_view> kStateKeys = {"path"};
const std::vector<std::string_view> kPeeringKeys = {"listen"};
const std::vector<std::string_view> kAuditOnFailure = {"reject", "continue"};
const std::vector<std::string_view> kRateLimitsKeys = {"backend", "redis_url", "replicas", "on_backend_failure"};
const std::vector<std::string_view> kRateLimitBackends = {"local", "redis"};
const std::vector<std::string_view> kBackendFailureModes = {"local", "reject"};
const std::vector<std::string_view> kLimitsKeys = {
    "max_connections",  "max_header_bytes",     "max_request_line_bytes",
    "max_header_count", "max_conn_lifetime_ms", "max_requests_per_conn",
    "max_chunk_extension_bytes", "max_chunk_extension_bytes_per_message"};
const std::vector<std::string_view> kTimeoutsKeys = {
    "handshake_ms", "header_ms", "idle_ms", "upstream_connect_ms", "upstream_response_ms",
    "tunnel_idle_ms", "shutdown_grace_ms"};
const std::vector<std::string_view> kOnLimit = {"rewrite", "reject"};

constexpr uint64_t kMaxTimeoutMs = 86400000;  // one day

// ---------------------------------------------------------------------------
// The validator: reads a parsed document into a Config, collecting problems.

class Loader : public Reader {
 public:
  Loader(std::string base_dir, const EnvOverrides& env) : Reader(std::move(base_dir)), env_(env) {}

  void load(const value& root, Config& c) {
    if (!root.is<object>()) {
      add("(root)", std::string("must be a JSON object, got ") + type_name(root));
      return;
    }
    const object& o = root.get<object>();
    check_keys(o, "", kTopKeys);

    if (auto* v = member(o, "node")) {
      load_node(*v, c.node);
    } else {
      add("node", "required (the node's own org and entity_uri)");
    }
    load_tls(member(o, "tls"), c.tls);
    load_ingress(member(o, "ingress"), c.ingress);
    load_egress(member(o, "egress"), c.egress);
    load_admin(member(o, "admin"), c.admin);
    if (auto* v = member(o, "workers")) load_workers(*v, c.workers);
    if (auto* v = member(o, "manifests_dir")) read_path(*v, "manifests_dir", c.manifests_dir, true);
    if (auto* v = member(o, "peers")) load_peers(*v, c);
    if (auto* v = member(o, "routes")) load_routes(*v, c.routes);
    if (auto* v = member(o, "grants")) load_grants(*v, c);
    if (auto* v = member(o, "http")) load_http(*v, c.http);
    if (auto* v = member(o, "audit")) load_audit(*v, c.audit);
    if (auto* v = member(o, "state")) load_state(*v, c.state_path);
    if (auto* v = member(o, "peering")) load_peering(*v, c.peering_listen);
    if (auto* v = member(o, "rate_limits")) load_rate_limits(*v, c.rate_limits);
    if (auto* v = member(o, "limits")) load_limits(*v, c.limits);
    std::optional<uint32_t> grace_in_timeouts;
    if (auto* v = member(o, "timeouts")) load_timeouts(*v, c.timeouts, grace_in_timeouts);
    if (auto* v = member(o, "shutdown_grace_ms")) {
      uint32_t grace = 0;
      if (read_uint(*v, "shutdown_grace_ms", grace, 0, kMaxTimeoutMs)) {
        if (grace_in_timeouts && *grace_in_timeouts != grace) {
          add("shutdown_grace_ms", "conflicts with timeouts.shutdown_grace_ms (" +
                                       std::to_string(grace) + " vs " +
                                       std::to_string(*grace_in_timeouts) + "); set only one");
        } else {
          c.timeouts.shutdown_grace_ms = grace;
        }
      }
    }
    if (auto* v = member(o, "enforce")) read_bool(*v, "enforce", c.enforce);
    if (auto* v = member(o, "authenticate_only")) read_bool(*v, "authenticate_only", c.authenticate_only);
    if (auto* v = member(o, "log_requests")) read_bool(*v, "log_requests", c.log_requests);
    if (auto* v = member(o, "limit_param")) {
      std::string p;
      if (read_string(*v, "limit_param", p)) {
        bool ok = !p.empty() && p.size() <= 64;
        for (char ch : p) {
          ok = ok && (is_alpha(ch) || is_digit(ch) || ch == '_' || ch == '-' || ch == '.' ||
                      ch == '~');
        }
        if (ok) {
          c.limit_param = p;
        } else {
          add("limit_param", "must be a query parameter name of 1 to 64 characters from "
                             "A-Z a-z 0-9 _ - . ~ (got " + quote(p) + ")");
        }
      }
    }
    if (auto* v = member(o, "on_limit")) read_enum(*v, "on_limit", kOnLimit, c.on_limit);
    // "$schema" and "_comment" are accepted and ignored.

    apply_env_and_check_tls(c.tls);
  }

 private:
  const EnvOverrides& env_;

 private:
  // What an address is for: the data listeners take host:port only; the
  // admin listener and the upstream may be unix sockets.
  enum class Use { listen, admin_listen, upstream };

  bool read_endpoint(const value& v, const std::string& where, Use use, Endpoint& out) {
    std::string s;
    if (!read_string(v, where, s)) return false;
    std::string err;
    auto ep = parse_endpoint(s, &err);
    if (!ep) {
      add(where, err);
      return false;
    }
    const bool listen = use != Use::upstream;
    if (use == Use::listen && ep->kind == Endpoint::Kind::unix_socket) {
      add(where, "listen addresses must be host:port (unix sockets are supported for "
                 "ingress.upstream and admin.listen only)");
      return false;
    }
    if (!listen && ep->kind == Endpoint::Kind::tcp && ep->port == 0) {
      add(where, "port 0 is only meaningful for listen addresses (got " + quote(s) + ")");
      return false;
    }
    out = std::move(*ep);
    return true;
  }

  void load_node(const value& v, NodeConfig& node) {
    const object* o = as_object(v, "node");
    if (!o) return;
    check_keys(*o, "node", kNodeKeys);
    if (auto* org = member(*o, "org")) {
      std::string s;
      if (read_string(*org, "node.org", s)) {
        if (auto e = slug_error(s)) {
          add("node.org", *e);
        } else {
          node.org = s;
        }
      }
    } else {
      add("node.org", "required");
    }
    if (auto* uri = member(*o, "entity_uri")) {
      std::string s;
      if (read_string(*uri, "node.entity_uri", s)) {
        if (auto e = uri_error(s)) {
          add("node.entity_uri", *e);
        } else {
          node.entity_uri = s;
        }
      }
    } else {
      add("node.entity_uri", "required");
    }
    if (auto* f = member(*o, "endpoints"); f && !f->is<picojson::null>()) {
      if (auto list = read_string_list(*f, "node.endpoints")) {
        for (size_t j = 0; j < list->size(); ++j) {
          if (auto e = peer_url_error((*list)[j])) add(index_path("node.endpoints", j), *e);
        }
        node.endpoints = std::move(*list);
      }
    }
    if (auto* f = member(*o, "ca_bundle")) read_path(*f, "node.ca_bundle", node.ca_bundle, true);
    if (auto* f = member(*o, "bundle_refresh_hint_s")) {
      read_uint(*f, "node.bundle_refresh_hint_s", node.bundle_refresh_hint_s, 1, 604800);
    }
  }

  void load_tls(const value* v, TlsFiles& tls) {
    if (!v || v->is<picojson::null>()) return;  // insecure mode unless env provides files
    const object* o = as_object(*v, "tls");
    if (!o) return;
    check_keys(*o, "tls", kTlsKeys);
    if (auto* f = member(*o, "cert")) read_path(*f, "tls.cert", tls.cert, true);
    if (auto* f = member(*o, "key")) read_path(*f, "tls.key", tls.key, true);
    if (auto* f = member(*o, "ca_bundle")) read_path(*f, "tls.ca_bundle", tls.ca_bundle, true);
    if (auto* f = member(*o, "crl")) read_path(*f, "tls.crl", tls.crl, true);
    if (auto* f = member(*o, "crl_fail_open")) read_bool(*f, "tls.crl_fail_open", tls.crl_fail_open);
    if (auto* f = member(*o, "crl_urls"); f && !f->is<picojson::null>()) {
      if (auto list = read_string_list(*f, "tls.crl_urls")) {
        for (size_t j = 0; j < list->size(); ++j) {
          std::string e;
          if (!parse_http_url((*list)[j], &e)) add(index_path("tls.crl_urls", j), e);
        }
        tls.crl_urls = std::move(*list);
      }
    }
    if (auto* f = member(*o, "crl_refresh_ms")) {
      read_uint(*f, "tls.crl_refresh_ms", tls.crl_refresh_ms, 1000, kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "watch_interval_ms")) {
      read_uint(*f, "tls.watch_interval_ms", tls.watch_interval_ms, 100, kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "ticket_rotation_ms")) {
      // TLS 1.3 tickets live at most 7 days (RFC 8446 §4.6.1).
      read_uint(*f, "tls.ticket_rotation_ms", tls.ticket_rotation_ms, 1000, 604800000);
    }
    if (auto* f = member(*o, "session_tickets")) {
      read_bool(*f, "tls.session_tickets", tls.session_tickets);
    }
  }

  void apply_env(const std::optional<std::string>& env_value, const char* env_name,
                 std::string& field) {
    if (!env_value) return;
    if (env_value->empty() || env_value->find('\0') != std::string::npos) {
      add(env_name, "must be a non-empty path");
      return;
    }
    std::error_code ec;
    fs::path cwd = fs::current_path(ec);
    if (ec) {
      add(env_name, "cannot resolve relative path: " + ec.message());
      return;
    }
    field = resolve(cwd.string(), *env_value);
  }

  void apply_env_and_check_tls(TlsFiles& tls) {
    apply_env(env_.tls_cert, "FEDPROXY_TLS_CERT_PATH", tls.cert);
    apply_env(env_.tls_key, "FEDPROXY_TLS_KEY_PATH", tls.key);
    apply_env(env_.tls_ca_bundle, "FEDPROXY_TLS_CA_BUNDLE", tls.ca_bundle);
    auto from = [](const std::optional<std::string>& e, const char* name) {
      return e ? std::string(" (set by ") + name + ")" : std::string();
    };
    if (!tls.cert.empty() && tls.key.empty()) {
      add("tls.key", "required when tls.cert is set" + from(env_.tls_cert, "FEDPROXY_TLS_CERT_PATH"));
    }
    if (tls.cert.empty() && !tls.key.empty()) {
      add("tls.cert", "required when tls.key is set" + from(env_.tls_key, "FEDPROXY_TLS_KEY_PATH"));
    }
    if (!tls.cert.empty() && tls.ca_bundle.empty()) {
      add("tls.ca_bundle", "required when tls.cert is set (peer certificates are verified "
                           "against it)" + from(env_.tls_cert, "FEDPROXY_TLS_CERT_PATH"));
    }
  }

  void load_ingress(const value* v, IngressConfig& in) {
    in.listen = *parse_endpoint("0.0.0.0:8443", nullptr);
    in.upstream = *parse_endpoint("127.0.0.1:8080", nullptr);
    if (!v) return;
    const object* o = as_object(*v, "ingress");
    if (!o) return;
    check_keys(*o, "ingress", kIngressKeys);
    if (auto* f = member(*o, "listen")) read_endpoint(*f, "ingress.listen", Use::listen, in.listen);
    if (auto* f = member(*o, "upstream")) read_endpoint(*f, "ingress.upstream", Use::upstream, in.upstream);
    if (auto* f = member(*o, "upstream_pool_max_idle")) {
      read_uint(*f, "ingress.upstream_pool_max_idle", in.upstream_pool_max_idle, 0, 100000);
    }
  }

  void load_egress(const value* v, EgressConfig& eg) {
    eg.listen = parse_endpoint("127.0.0.1:15001", nullptr);
    if (!v) return;
    if (v->is<picojson::null>()) {
      eg.listen.reset();
      return;
    }
    const object* o = as_object(*v, "egress");
    if (!o) return;
    check_keys(*o, "egress", kEgressKeys);
    if (auto* f = member(*o, "allow_non_loopback")) {
      read_bool(*f, "egress.allow_non_loopback", eg.allow_non_loopback);
    }
    if (auto* f = member(*o, "heartbeat_interval_ms")) {
      read_uint(*f, "egress.heartbeat_interval_ms", eg.heartbeat_interval_ms, 100, kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "dns_ttl_ms")) read_uint(*f, "egress.dns_ttl_ms", eg.dns_ttl_ms, 0, kMaxTimeoutMs);
    if (auto* f = member(*o, "dns_negative_ttl_ms")) {
      read_uint(*f, "egress.dns_negative_ttl_ms", eg.dns_negative_ttl_ms, 0, kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "listen")) {
      if (f->is<picojson::null>()) {
        eg.listen.reset();
      } else {
        Endpoint ep;
        if (read_endpoint(*f, "egress.listen", Use::listen, ep)) eg.listen = ep;
      }
    }
    if (eg.listen && !eg.allow_non_loopback && !eg.listen->is_loopback()) {
      add("egress.listen", "must be a loopback address (127.0.0.0/8, [::1] or localhost), got " +
                               quote(eg.listen->text) +
                               "; set egress.allow_non_loopback to true to allow it");
    }
  }

  void load_admin(const value* v, AdminConfig& ad) {
    ad.listen = parse_endpoint("127.0.0.1:9901", nullptr);
    if (!v) return;
    if (v->is<picojson::null>()) {
      ad.listen.reset();
      return;
    }
    const object* o = as_object(*v, "admin");
    if (!o) return;
    check_keys(*o, "admin", kAdminKeys);
    if (auto* f = member(*o, "listen")) {
      if (f->is<picojson::null>()) {
        ad.listen.reset();
      } else {
        Endpoint ep;
        if (read_endpoint(*f, "admin.listen", Use::admin_listen, ep)) ad.listen = ep;
      }
    }
    if (auto* f = member(*o, "token_file")) {
      std::string path;
      if (read_path(*f, "admin.token_file", path, true) && !path.empty()) {
        ad.tokens.push_back({std::string(kTokenFileActor), path, "admin.token_file"});
      }
    }
    if (auto* f = member(*o, "tokens"); f && !f->is<picojson::null>()) load_admin_tokens(*f, ad.tokens);
    if (auto* f = member(*o, "allowed_hosts"); f && !f->is<picojson::null>()) {
      load_allowed_hosts(*f, ad.allowed_hosts);
    }
  }

  // admin.tokens: [{"name": "ops", "file": "ops.token"}, ...]; names are
  // unique (admin.token_file, when also set, is named "admin").
  void load_admin_tokens(const value& v, std::vector<AdminTokenFile>& tokens) {
    if (!v.is<array>()) {
      add("admin.tokens", std::string("must be an array of {\"name\", \"file\"} objects, got ") +
                              type_name(v));
      return;
    }
    const array& a = v.get<array>();
    if (a.empty()) {
      add("admin.tokens", "must name at least one token (leave the key out to run the admin API "
                          "without authentication)");
      return;
    }
    std::map<std::string, std::string> seen;  // name → where it was given
    for (const auto& t : tokens) seen.emplace(t.name, t.where);  // admin.token_file
    for (size_t i = 0; i < a.size(); ++i) {
      std::string where = index_path("admin.tokens", i);
      const object* o = as_object(a[i], where);
      if (!o) continue;
      check_keys(*o, where, kAdminTokenKeys);
      AdminTokenFile t;
      t.where = where + ".file";
      bool ok = true;
      if (auto* f = member(*o, "name")) {
        if (read_string(*f, where + ".name", t.name)) {
          if (auto e = token_name_error(t.name)) {
            add(where + ".name", *e);
            ok = false;
          } else if (auto [it, inserted] = seen.emplace(t.name, where + ".name"); !inserted) {
            add(where + ".name", "duplicate token name " + quote(t.name) + " (also " + it->second + ")");
            ok = false;
          }
        } else {
          ok = false;
        }
      } else {
        add(where + ".name", "required (the actor named in logs and audit events)");
        ok = false;
      }
      if (auto* f = member(*o, "file")) {
        ok &= read_path(*f, t.where, t.path, false);
      } else {
        add(t.where, "required (the file holding the token)");
        ok = false;
      }
      if (ok) tokens.push_back(std::move(t));
    }
  }

  static std::optional<std::string> token_name_error(const std::string& n) {
    bool ok = !n.empty() && n.size() <= 63 && (is_alpha(n[0]) || is_digit(n[0]));
    for (char ch : n) {
      ok = ok && ((ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '-' || ch == '_' || ch == '.');
    }
    if (ok) return std::nullopt;
    return "must be 1 to 63 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or "
           "digit (got " + quote(n) + ")";
  }

  void load_allowed_hosts(const value& v, std::vector<HostPort>& hosts) {
    auto list = read_string_list(v, "admin.allowed_hosts");
    if (!list) return;
    for (size_t j = 0; j < list->size(); ++j) {
      std::string error;
      if (auto h = parse_host((*list)[j], &error)) {
        hosts.push_back(std::move(*h));
      } else {
        add(index_path("admin.allowed_hosts", j),
            error + " in " + quote((*list)[j]) +
                "; expected a host name or IP address as a Host header carries it, optionally "
                "with \":port\" (\"admin.example.internal\", \"10.0.0.5:9901\", \"[fd00::5]\")");
      }
    }
  }

  void load_workers(const value& v, unsigned& workers) {
    if (v.is<std::string>() && v.get<std::string>() == "auto") {
      unsigned n = std::thread::hardware_concurrency();
      workers = std::clamp(n, 1u, 64u);
      return;
    }
    if (v.is<int64_t>()) {
      read_uint(v, "workers", workers, 1, 64);
      return;
    }
    add("workers", std::string("must be an integer between 1 and 64 or \"auto\", got ") +
                       (v.is<std::string>() ? quote(v.get<std::string>()) : type_name(v)));
  }

  void load_peers(const value& v, Config& c) {
    if (!v.is<array>()) {
      add("peers", std::string("must be an array, got ") + type_name(v));
      return;
    }
    const array& a = v.get<array>();
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < a.size(); ++i) {
      std::string where = index_path("peers", i);
      if (!as_object(a[i], where)) continue;
      PeerParse p = parse_peer(a[i], where, base_);
      // What only the whole file shows, reported where parse_peer would
      // report the org: after the unknown keys, before the other fields.
      const std::string org_where = where + ".org";
      auto first_field = std::find_if(p.problems.begin(), p.problems.end(), [&](const ConfigProblem& q) {
        if (q.where.size() <= where.size()) return false;
        const std::string field = q.where.substr(where.size() + 1);
        const std::string key = field.substr(0, field.find_first_of("[."));  // "endpoints[0]" → "endpoints"
        const auto& known = peer_keys();
        return std::find(known.begin(), known.end(), key) != known.end();
      });
      bool org_ok = !p.peer.org.empty() && std::none_of(p.problems.begin(), p.problems.end(),
                                                        [&](const ConfigProblem& q) { return q.where == org_where; });
      if (org_ok && !c.node.org.empty() && p.peer.org == c.node.org) {
        p.problems.insert(first_field, {org_where, "is this node's own org (node.org); a node is not its own peer"});
      } else if (org_ok) {
        if (auto [it, inserted] = seen.emplace(p.peer.org, i); !inserted) {
          p.problems.insert(first_field, {org_where, "duplicate peer " + quote(p.peer.org) + " (also peers[" +
                                                         std::to_string(it->second) + "])"});
        }
      }
      if (p.problems.empty()) c.peers.push_back(std::move(p.peer));
      for (ConfigProblem& q : p.problems) problems.push_back(std::move(q));
    }
  }

  void load_routes(const value& v, std::vector<RouteConfig>& routes) {
    if (!v.is<array>()) {
      add("routes", std::string("must be an array, got ") + type_name(v));
      return;
    }
    const array& a = v.get<array>();
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < a.size(); ++i) {
      std::string where = index_path("routes", i);
      const object* o = as_object(a[i], where);
      if (!o) continue;
      check_keys(*o, where, kRouteKeys);
      RouteConfig r;
      bool ok = true;
      if (auto* f = member(*o, "prefix")) {
        if (read_string(*f, where + ".prefix", r.prefix)) {
          if (auto e = route_prefix_error(r.prefix)) {
            add(where + ".prefix", *e);
            ok = false;
          } else if (auto [it, inserted] = seen.emplace(r.prefix, i); !inserted) {
            add(where + ".prefix", "duplicate prefix " + quote(r.prefix) + " (also routes[" +
                                       std::to_string(it->second) + "])");
            ok = false;
          }
        } else {
          ok = false;
        }
      } else {
        add(where + ".prefix", "required");
        ok = false;
      }
      if (auto* f = member(*o, "resource")) {
        if (read_string(*f, where + ".resource", r.resource)) {
          bool good = !r.resource.empty() && r.resource.size() <= 128;
          for (char ch : r.resource) {
            good = good && ((ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '_' || ch == '-');
          }
          if (!good) {
            add(where + ".resource", "must be 1 to 128 characters of a-z, 0-9, '_' and '-' (got " +
                                         quote(r.resource) + ")");
            ok = false;
          }
        } else {
          ok = false;
        }
      } else {
        add(where + ".resource", "required");
        ok = false;
      }
      if (auto* f = member(*o, "sensitive")) ok &= read_bool(*f, where + ".sensitive", r.sensitive);
      if (ok) routes.push_back(std::move(r));
    }
  }

  // A prefix follows the request-target rules (SPEC §4: canonicalize_target
  // under path_policy "reject"), so what no request could ever be is an
  // error; compile_policy matches requests against its canonical form.
  static std::optional<std::string> route_prefix_error(const std::string& p) {
    if (p.empty() || p[0] != '/') return "must start with \"/\" (got " + quote(p) + ")";
    const TargetResult t = canonicalize_target(p, "GET", PathPolicy::reject);
    if (t.status != TargetStatus::ok) return "is not a canonical path: " + std::string(t.detail) + " (got " + quote(p) + ")";
    if (t.target.has_query) return "must be a path without a query ('?') (got " + quote(p) + ")";
    return std::nullopt;
  }

  void load_grants(const value& v, Config& c) {
    if (!v.is<array>()) {
      add("grants", std::string("must be an array, got ") + type_name(v));
      return;
    }
    const array& a = v.get<array>();
    for (size_t i = 0; i < a.size(); ++i) {
      std::string where = index_path("grants", i);
      const object* o = as_object(a[i], where);
      if (!o) continue;
      const value* id = member(*o, "id");
      if (!id) {
        add(where + ".id", "required (a grant needs a string id)");
        continue;
      }
      std::string s;
      if (!read_nonempty_string(*id, where + ".id", s)) continue;
      GrantParse g = parse_grant(a[i], std::move(where));
      c.grants.push_back(std::move(g.grant));
      for (ConfigProblem& p : g.problems) c.grant_problems.push_back(std::move(p));
    }
  }

  void load_http(const value& v, HttpConfig& http) {
    const object* o = as_object(v, "http");
    if (!o) return;
    check_keys(*o, "http", kHttpKeys);
    std::string s;
    if (auto* f = member(*o, "path_policy"); f && read_enum(*f, "http.path_policy", kPathPolicies, s)) {
      http.path_policy = s == "rewrite" ? PathPolicy::rewrite : PathPolicy::reject;
    }
    if (auto* f = member(*o, "headers_with_underscores");
        f && read_enum(*f, "http.headers_with_underscores", kUnderscoreHeaders, s)) {
      http.headers_with_underscores = s == "allow"  ? HttpConfig::Underscores::allow
                                      : s == "drop" ? HttpConfig::Underscores::drop
                                                    : HttpConfig::Underscores::reject;
    }
  }

  void load_audit(const value& v, AuditConfig& audit) {
    if (v.is<picojson::null>()) return;
    const object* o = as_object(v, "audit");
    if (!o) return;
    check_keys(*o, "audit", kAuditKeys);
    if (auto* f = member(*o, "path")) read_path(*f, "audit.path", audit.path, true);
    std::string s;
    if (auto* f = member(*o, "on_failure"); f && read_enum(*f, "audit.on_failure", kAuditOnFailure, s)) {
      audit.on_failure = s == "continue" ? AuditConfig::OnFailure::continue_ : AuditConfig::OnFailure::reject;
    }
  }

  // {"state": {"path": "state.json"}} (SPEC §11, §12).
  void load_state(const value& v, std::string& path) {
    if (v.is<picojson::null>()) return;
    const object* o = as_object(v, "state");
    if (!o) return;
    check_keys(*o, "state", kStateKeys);
    if (auto* f = member(*o, "path")) read_path(*f, "state.path", path, true);
  }

  // {"peering": {"listen": "0.0.0.0:8444"}} (SPEC §13); null = off.
  void load_peering(const value& v, std::optional<Endpoint>& listen) {
    if (v.is<picojson::null>()) return;
    const object* o = as_object(v, "peering");
    if (!o) return;
    check_keys(*o, "peering", kPeeringKeys);
    if (auto* f = member(*o, "listen"); f && !f->is<picojson::null>()) {
      Endpoint ep;
      if (read_endpoint(*f, "peering.listen", Use::listen, ep)) listen = ep;
    }
  }

  // {"rate_limits": {"backend": "redis", "redis_url": "redis://valkey:6379/0",
  //  "replicas": 3, "on_backend_failure": "local"}} (SPEC §14).
  void load_rate_limits(const value& v, RateLimitsConfig& rl) {
    if (v.is<picojson::null>()) return;
    const object* o = as_object(v, "rate_limits");
    if (!o) return;
    check_keys(*o, "rate_limits", kRateLimitsKeys);
    std::string s;
    if (auto* f = member(*o, "backend"); f && read_enum(*f, "rate_limits.backend", kRateLimitBackends, s)) {
      rl.backend = s == "redis" ? RateLimitsConfig::Backend::redis : RateLimitsConfig::Backend::local;
    }
    if (auto* f = member(*o, "on_backend_failure");
        f && read_enum(*f, "rate_limits.on_backend_failure", kBackendFailureModes, s)) {
      rl.on_backend_failure =
          s == "reject" ? RateLimitsConfig::OnFailure::reject : RateLimitsConfig::OnFailure::local;
    }
    if (auto* f = member(*o, "replicas")) read_uint(*f, "rate_limits.replicas", rl.replicas, 1, 1000);
    const value* url = member(*o, "redis_url");
    if (url && !url->is<picojson::null>()) {
      std::string err;
      if (!url->is<std::string>()) {
        add("rate_limits.redis_url", "must be a string such as \"redis://valkey:6379/0\"");
      } else if (auto u = parse_redis_url(url->get<std::string>(), &err)) {
        rl.redis = *u;
      } else {
        add("rate_limits.redis_url", err);
      }
    }
    if (rl.backend == RateLimitsConfig::Backend::redis && !rl.redis && !(url && url->is<std::string>())) {
      add("rate_limits.redis_url", "required with backend \"redis\" (e.g. \"redis://valkey:6379/0\")");
    }
  }

  void load_limits(const value& v, LimitsConfig& l) {
    const object* o = as_object(v, "limits");
    if (!o) return;
    check_keys(*o, "limits", kLimitsKeys);
    if (auto* f = member(*o, "max_connections")) {
      read_uint(*f, "limits.max_connections", l.max_connections, 1, 1000000);
    }
    if (auto* f = member(*o, "max_header_bytes")) {
      read_uint(*f, "limits.max_header_bytes", l.max_header_bytes, 1024, 1048576);
    }
    if (auto* f = member(*o, "max_request_line_bytes")) {
      read_uint(*f, "limits.max_request_line_bytes", l.max_request_line_bytes, 256, 1048576);
    }
    if (auto* f = member(*o, "max_header_count")) {
      read_uint(*f, "limits.max_header_count", l.max_header_count, 1, 10000);
    }
    if (auto* f = member(*o, "max_conn_lifetime_ms")) {
      read_uint(*f, "limits.max_conn_lifetime_ms", l.max_conn_lifetime_ms, 0, 30 * kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "max_requests_per_conn")) {
      read_uint(*f, "limits.max_requests_per_conn", l.max_requests_per_conn, 0, 1000000000);
    }
    if (auto* f = member(*o, "max_chunk_extension_bytes")) {
      read_uint(*f, "limits.max_chunk_extension_bytes", l.max_chunk_extension_bytes, 0, 1048576);
    }
    if (auto* f = member(*o, "max_chunk_extension_bytes_per_message")) {
      read_uint(*f, "limits.max_chunk_extension_bytes_per_message", l.max_chunk_extension_bytes_per_message, 0,
                16777216);
    }
  }

  void load_timeouts(const value& v, TimeoutsConfig& t, std::optional<uint32_t>& grace) {
    const object* o = as_object(v, "timeouts");
    if (!o) return;
    check_keys(*o, "timeouts", kTimeoutsKeys);
    std::pair<const char*, uint32_t*> fields[] = {
        {"handshake_ms", &t.handshake_ms},
        {"header_ms", &t.header_ms},
        {"idle_ms", &t.idle_ms},
        {"upstream_connect_ms", &t.upstream_connect_ms},
        {"upstream_response_ms", &t.upstream_response_ms},
        {"tunnel_idle_ms", &t.tunnel_idle_ms},
    };
    for (auto [key, field] : fields) {
      if (auto* f = member(*o, key)) read_uint(*f, std::string("timeouts.") + key, *field, 1, kMaxTimeoutMs);
    }
    if (auto* f = member(*o, "shutdown_grace_ms")) {
      uint32_t g = 0;
      if (read_uint(*f, "timeouts.shutdown_grace_ms", g, 0, kMaxTimeoutMs)) {
        t.shutdown_grace_ms = g;
        grace = g;
      }
    }
  }
};

ConfigResult parse_config_impl(const std::string& json_text, const std::string& base_dir,
                               const EnvOverrides& env) {
  ConfigResult result;
  value root;
  bool parsed = parse_json_strict(json_text, &root, &result.problems);
  if (!parsed) return result;

  std::error_code ec;
  fs::path base = base_dir.empty() ? fs::current_path(ec) : fs::absolute(base_dir, ec);
  if (ec) {
    result.problems.push_back({"(base directory)", "cannot resolve " + quote(base_dir) + ": " +
                                                       ec.message()});
    return result;
  }

  Config c;
  c.dir = Reader::resolve("/", base.string());
  Loader loader(c.dir, env);
  loader.load(root, c);
  result.problems.insert(result.problems.end(), loader.problems.begin(), loader.problems.end());
  if (result.problems.empty()) {
    result.config = std::move(c);
  } else {
    result.partial = std::move(c);
  }
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

bool Endpoint::is_loopback() const {
  if (kind == Kind::unix_socket) return true;
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    static const unsigned char kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6.s6_addr, kLoop, 16) == 0) return true;
    // IPv4-mapped ::ffff:127.x.y.z
    return std::memcmp(v6.s6_addr, kMapped, 12) == 0 && v6.s6_addr[12] == 127;
  }
  return false;
}

const char* to_string(AuditConfig::OnFailure f) {
  return f == AuditConfig::OnFailure::continue_ ? "continue" : "reject";
}

EnvOverrides EnvOverrides::from_environment() {
  auto get = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;  // empty = unset
    return std::string(v);
  };
  EnvOverrides env;
  env.tls_cert = get("FEDPROXY_TLS_CERT_PATH");
  env.tls_key = get("FEDPROXY_TLS_KEY_PATH");
  env.tls_ca_bundle = get("FEDPROXY_TLS_CA_BUNDLE");
  return env;
}

std::optional<Endpoint> parse_endpoint(const std::string& text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Endpoint> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  Endpoint ep;
  ep.text = text;
  if (text.empty()) return fail("empty address; expected \"host:port\", \"[v6]:port\" or \"unix:/path\"");
  if (text.find('\0') != std::string::npos) return fail("address must not contain NUL characters");

  if (text.starts_with("unix:")) {
    std::string path = text.substr(5);
    if (path.empty() || path[0] != '/') {
      return fail("unix socket path must be absolute, e.g. \"unix:/run/app.sock\" (got " +
                  quote(text) + ")");
    }
    if (path.size() > kMaxUnixPathBytes) {
      return fail("unix socket path is longer than " + std::to_string(kMaxUnixPathBytes) +
                  " bytes: " + quote(path));
    }
    if (path.back() == '/') return fail("unix socket path names a directory: " + quote(path));
    ep.kind = Endpoint::Kind::unix_socket;
    ep.path = std::move(path);
    return ep;
  }

  std::string host;
  std::string port;
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return fail("missing ']' in " + quote(text));
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("missing port in " + quote(text) + "; expected \"[v6]:port\"");
    }
    port = text.substr(close + 2);
    if (!is_ipv6_literal(host)) {
      return fail("invalid IPv6 address " + quote(host) + " in " + quote(text));
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return fail("missing port in " + quote(text) + "; expected \"host:port\"");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return fail("IPv6 addresses must be written in brackets, e.g. \"[::1]:9901\" (got " +
                  quote(text) + ")");
    }
    std::string lower = host;
    for (char& ch : lower) {
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    if (lower == "localhost") {
      host = lower;
    } else if (host.empty()) {
      return fail("missing host in " + quote(text) + "; use \"0.0.0.0\" or \"[::]\" for all addresses");
    } else if (!is_ipv4_literal(host)) {
      return fail("host " + quote(host) +
                  " must be an IP address or \"localhost\" (host names are not resolved)");
    }
  }
  if (port.empty()) return fail("missing port in " + quote(text));
  if (!parse_port(port, &ep.port)) {
    return fail("invalid port " + quote(port) + " in " + quote(text) + " (must be 0..65535)");
  }
  ep.kind = Endpoint::Kind::tcp;
  ep.host = std::move(host);
  return ep;
}

ConfigResult parse_config(const std::string& json_text, const std::string& base_dir,
                          const EnvOverrides& env) {
  try {
    return parse_config_impl(json_text, base_dir, env);
  } catch (const std::exception& e) {
    ConfigResult r;
    r.problems.push_back({"(internal)", std::string("configuration could not be loaded: ") + e.what()});
    return r;
  } catch (...) {
    ConfigResult r;
    r.problems.push_back({"(internal)", "configuration could not be loaded"});
    return r;
  }
}

ConfigResult load_config_file(const std::string& path, const EnvOverrides& env) {
  ConfigResult bad;
  try {
    // The absolute path is taken lexically, without resolving symlinks: with a
    // Kubernetes ConfigMap the file is ..data/config.json → ..2024_xx/, and the
    // timestamped directory disappears at the next update.
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(path), ec);
    if (ec || path.empty()) {
      bad.problems.push_back({path, "cannot read: " + (ec ? ec.message() : std::string("empty path"))});
      return bad;
    }
    abs = abs.lexically_normal();

    std::FILE* f = std::fopen(abs.c_str(), "rb");
    if (!f) {
      bad.problems.push_back({path, std::string("cannot read: ") + std::strerror(errno)});
      return bad;
    }
    std::string text;
    char buf[65536];
    bool too_big = false;
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      text.append(buf, n);
      if (text.size() > kMaxConfigFileBytes) {
        too_big = true;
        break;
      }
    }
    int read_errno = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (read_errno != 0) {
      bad.problems.push_back({path, std::string("cannot read: ") + std::strerror(read_errno)});
      return bad;
    }
    if (too_big) {
      bad.problems.push_back({path, "cannot read: file is larger than " +
                                        std::to_string(kMaxConfigFileBytes >> 20) + " MiB"});
      return bad;
    }
    ConfigResult r = parse_config(text, abs.parent_path().string(), env);
    if (r.config) {
      r.config->path = abs.string();
    }
    return r;
  } catch (const std::exception& e) {
    bad.problems.push_back({path, std::string("cannot read: ") + e.what()});
    return bad;
  } catch (...) {
    bad.problems.push_back({path, "cannot read"});
    return bad;
  }
}

}  // namespace fedproxy::config
