// The admin API (SPEC §10): /healthz, /readyz, /status, /metrics, POST /reload.
// Requests reach these only through the admin gate (proxy/core/admin_gate.hpp).
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/json.hpp"
#include "proxy/app/admin_explain.hpp"
#include "proxy/app/cert_expiry.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/metrics.hpp"
#include "proxy/app/limits_report.hpp"
#include "proxy/app/ops_metrics.hpp"
#include "proxy/app/prom_text.hpp"
#include "proxy/app/runtime.hpp"
#include "proxy/http1/serializer.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::app {

namespace {
std::string q(std::string_view s) { return config::json::quote(s); }
const char* b(bool v) { return v ? "true" : "false"; }
constexpr int64_t kExpiryWarningDays = 30;

std::string string_array(const std::vector<std::string>& items) {
  std::string j = "[";
  for (size_t i = 0; i < items.size(); ++i) j += (i ? "," : "") + q(items[i]);
  return j + "]";
}

// A peer's own anchors; [] = it falls back to tls.ca_bundle.
std::string trust_anchors_json(const std::vector<policy::AnchorInfo>& anchors) {
  std::string j = "[";
  for (size_t i = 0; i < anchors.size(); ++i) {
    const policy::AnchorInfo& a = anchors[i];
    j += (i ? ",{" : "{") + std::string("\"subject\":") + q(a.subject) + ",\"sha256\":" + q(a.sha256) +
         ",\"spki_sha256\":" + q(a.spki_sha256) + ",\"not_after\":" + std::to_string(a.not_after) +
         ",\"source\":" + q(a.source) + ",\"file\":" + q(a.file) + "}";
  }
  return j + "]";
}
// /status "audit": the file, its chain head and whether lines are written.
std::string audit_status_json(const AuditSink& audit) {
  const AuditSink::Health h = audit.health();
  return "{\"path\":" + q(audit.path()) + ",\"chain_head\":" + q(audit.chain_head()) +
         ",\"state\":" + q(h.failing ? "failing" : "ok") + ",\"on_failure\":" + q(config::to_string(h.on_failure)) +
         ",\"write_failures\":" + std::to_string(h.write_failures) +
         ",\"lost_records\":" + std::to_string(h.lost_records) +
         ",\"failing_since\":" + (h.failing ? q(h.failing_since) : std::string("null")) +
         ",\"last_error\":" + (h.last_error.empty() ? std::string("null") : q(h.last_error)) + "}";
}
}  // namespace

core::AdminResponse Runtime::handle_admin(const core::AdminRequest& req) {
  const std::string_view path = req.path;
  if (path == "/v1/explain") return handle_explain(req, *snap_);
  if (ManagementApi::handles(path)) return management_->handle(req);
  if (JoinService::handles(path)) return join_->handle_admin(req);
  if (path == "/reload") {
    if (req.method != "POST") return core::AdminResponse::error(405, "method_not_allowed", "Use POST /reload.", "Allow: POST\r\n");
    LogLine("info", "reload requested")
        .str("actor", req.actor.empty() ? "anonymous" : req.actor)
        .str("peer_addr", req.peer)
        .str("request_id", req.request_id);
    debouncer_.request_now(static_cast<int64_t>(loop_.now_ms()));
    on_reload_due("admin", req.actor);
    // `fedproxy reload` (systemd's ExecReload) reads "result": only "ok" is
    // a success; restart_required was applied except for the keys named,
    // which is not what the operator asked for. 500 only when nothing applied.
    core::AdminResponse r;
    const ReloadResult result = reload_stats_.last_result;
    r.status = last_reload_ok_ ? 200 : 500;
    r.body = std::string("{\"ok\":") + b(result == ReloadResult::ok) + ",\"result\":" + q(to_string(result)) +
             ",\"restart_required\":" +
             string_array(last_reload_ok_ ? reload_stats_.pending_restart_keys : std::vector<std::string>{}) +
             ",\"error\":" + (last_reload_ok_ ? "null" : q(last_reload_error_)) + "}\n";
    return r;
  }
  if (path != "/healthz" && path != "/readyz" && path != "/status" && path != "/metrics") {
    return core::AdminResponse::error(404, "not_found", "Admin endpoints: /healthz /readyz /status /metrics /reload.");
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return core::AdminResponse::error(405, "method_not_allowed", "Use GET.", "Allow: GET, HEAD\r\n");
  }
  core::AdminResponse r;
  if (path == "/healthz") {
    r.body = "{\"status\":\"ok\"}\n";
  } else if (path == "/readyz") {
    bool upstream = probe_ && probe_->upstream_ok();
    // audit.on_failure "reject": not ready while requests are refused.
    bool audit = !audit_ || !audit_->refusing().load(std::memory_order_relaxed);
    // A CRL URL that delivered nothing yet: every handshake fails closed.
    bool crl = !snap_->server_tls || !snap_->server_tls->bundle().crl_incomplete() || snap_->config.tls.crl_fail_open;
    bool ready = !stopping_ && upstream && audit && crl;
    r.status = ready ? 200 : 503;
    r.body = std::string("{\"ready\":") + b(ready) + ",\"upstream\":" + b(upstream);
    if (audit_) r.body += std::string(",\"audit\":") + b(audit);  // with an audit log only
    if (!snap_->config.tls.crl_urls.empty()) r.body += std::string(",\"crl\":") + b(crl);
    r.body += "}\n";
  } else if (path == "/status") {
    r.body = status_json();
  } else {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_text();
    if (liveness_) {
      // One series per configured peer: a bounded label set.
      prom::family(r.body, "fedproxy_peer_up", "gauge", "1 when the peer's last heartbeats succeeded (state active).");
      for (const auto& [peer, h] : liveness_->health()) {
        prom::sample(r.body, "fedproxy_peer_up", {{"peer", peer}, {"state", core::to_string(h.state)}},
                     uint64_t{h.state == core::PeerState::active ? 1u : 0u});
      }
    }
  }
  return r;
}

void Runtime::admin_refused(const core::AdminRequest& req, const core::AdminVerdict& verdict) {
  const http1::Header* host = http1::find_header(req.headers, "host");
  LogLine("warn", "admin request refused")
      .num("status", verdict.status)
      .str("error", verdict.code)
      .str("method", req.method)
      .str("path", req.path)
      .str("host", host ? std::string_view(host->value) : std::string_view())
      .str("peer_addr", req.peer)
      .str("request_id", req.request_id);
}

// Every worker counts on its own Metrics; the sum is rendered.
void Runtime::merge_metrics(Metrics& total) const {
  events_.metrics().merge_into(total);
  for (const auto& t : threads_) t->events().metrics().merge_into(total);
}

std::string Runtime::metrics_text() const {
  Metrics total;
  merge_metrics(total);
  size_t idle = worker0_->upstream_idle();
  for (const auto& t : threads_) idle += t->upstream_idle();
  std::string out = total.render(shared_.ingress_count->active.load(), idle, snap_->server_tls == nullptr);
  OpsMetrics ops;
  ops.build = &build_info();
  ops.certs = cert_expiries(*snap_, total.peer_certs());
  if (snap_->server_tls && snap_->server_tls->bundle().crl()) {
    std::optional<int64_t> next = snap_->server_tls->bundle().crl_next_update();
    if (next && *next > 0) ops.crl_next_update = next;
  }
  ops.reloads = &reload_stats_;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const auto& [url, src] : crls_.sources()) {
    ops.crl_sources.push_back({url, src.data.empty() ? std::optional<int64_t>() : std::optional<int64_t>(now - src.this_update),
                               src.failures});
  }
  if (audit_) {
    const AuditSink::Health h = audit_->health();
    ops.audit = OpsMetrics::Audit{h.write_failures, h.lost_records, !h.failing};
  }
  return out + render_ops_metrics(ops) + limits_metrics_text(*shared_.limiter, leases_.get(), net::Loop::unix_ms());
}

// /status "crl": the state handshakes see, and per tls.crl_urls entry what
// was fetched (age = now - thisUpdate of the CRL in use).
std::string Runtime::crl_status_json(int64_t now) const {
  const config::Config& cfg = snap_->config;
  const certwatch::CertBundle& bundle = snap_->server_tls->bundle();
  if (!bundle.crl() && cfg.tls.crl_urls.empty()) return "{\"configured\":false}";
  const int64_t next = bundle.crl_next_update().value_or(0);
  const char* fail = cfg.tls.crl_fail_open ? "_fail_open" : "_fail_closed";
  std::string state = bundle.crl_incomplete() ? std::string("incomplete") + fail
                      : next && next < now    ? std::string("expired") + fail
                                              : std::string("current");
  std::string j = "{\"configured\":true,\"next_update\":" + std::to_string(next) + ",\"state\":" + q(state);
  j += ",\"urls\":[";
  for (size_t i = 0; i < cfg.tls.crl_urls.size(); ++i) {
    const std::string& url = cfg.tls.crl_urls[i];
    auto it = crls_.sources().find(url);
    const CrlSource* src = it == crls_.sources().end() ? nullptr : &it->second;
    const bool have = src && !src->data.empty();
    auto num_or_null = [](bool set, int64_t v) { return set ? std::to_string(v) : std::string("null"); };
    j += (i ? ",{" : "{") + std::string("\"url\":") + q(url) + ",\"has_crl\":" + b(have) +
         ",\"issuer\":" + (have ? q(src->issuer) : std::string("null")) +
         ",\"this_update\":" + num_or_null(have, have ? src->this_update : 0) +
         ",\"next_update\":" + num_or_null(have && src->next_update, have ? src->next_update : 0) +
         ",\"age_s\":" + num_or_null(have, have ? now - src->this_update : 0) +
         ",\"fetched_at\":" + num_or_null(have, have ? src->fetched_at : 0) +
         ",\"last_attempt\":" + num_or_null(src && src->last_attempt, src ? src->last_attempt : 0) +
         ",\"failures\":" + std::to_string(src ? src->failures : 0) +
         ",\"last_error\":" + (src && !src->last_error.empty() ? q(src->last_error) : std::string("null")) + "}";
  }
  return j + "]}";
}

std::vector<std::string> Runtime::expiry_warnings() const {
  std::vector<std::string> out;
  Metrics total;
  merge_metrics(total);
  const std::map<std::string, PeerCertSeen> seen = total.peer_certs();
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (snap_->server_tls) {
    int64_t days = (snap_->server_tls->bundle().cert_not_after() - now) / 86400;
    if (days < kExpiryWarningDays) out.push_back("node certificate expires in " + std::to_string(days) + " days");
  }
  if (snap_->policy) {
    for (const auto& p : snap_->policy->peers()) {
      int64_t days = (p.expires_at - now) / 86400;
      if (p.expires_at && days < kExpiryWarningDays) {
        out.push_back("peer " + p.slug + " expires in " + std::to_string(days) + " days");
      }
      for (const auto& a : p.trust_anchors) {
        int64_t days = (a.not_after - now) / 86400;
        if (days < kExpiryWarningDays) {
          out.push_back("peer " + p.slug + " trust anchor " + a.subject + " expires in " + std::to_string(days) + " days");
        }
      }
      // The certificate the peer last presented: it must be renewed before
      // it ends, whatever the peer's anchors allow.
      if (auto it = seen.find(p.slug); it != seen.end()) {
        int64_t days = (it->second.not_after - now) / 86400;
        if (days < kExpiryWarningDays) {
          out.push_back("peer " + p.slug + " certificate " + it->second.subject + " expires in " + std::to_string(days) + " days");
        }
      }
    }
  }
  return out;
}

std::string Runtime::status_json() const {
  const config::Config& cfg = snap_->config;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::string j = "{\"node\":{\"org\":" + q(cfg.node.org) + ",\"entity_uri\":" + q(cfg.node.entity_uri) + "}";
  j += std::string(",\"insecure\":") + b(snap_->server_tls == nullptr);
  std::vector<std::string> warnings = expiry_warnings();
  Metrics total;
  merge_metrics(total);
  const std::map<std::string, PeerCertSeen> seen_certs = total.peer_certs();
  if (snap_->server_tls) {
    const auto& bundle = snap_->server_tls->bundle();
    tls::PeerIdentity id = tls::identity_from_cert(*bundle.cert_chain());
    int64_t days_left = (id.not_after - now) / 86400;
    j += ",\"certificate\":{\"subject\":" + q(id.subject) + ",\"uri_sans\":[";
    for (size_t i = 0; i < id.uri_sans.size(); ++i) j += (i ? "," : "") + q(id.uri_sans[i]);
    j += "],\"fingerprint_sha256\":" + q(id.der_sha256) + ",\"not_after\":" + std::to_string(id.not_after) +
         ",\"days_left\":" + std::to_string(days_left) + "}";
    j += ",\"ca_count\":" + std::to_string(bundle.ca_count());
    j += ",\"crl\":" + crl_status_json(now);
  }
  j += ",\"policy\":" + q(snap_->policy ? "grants" : "authenticate_only");
  j += ",\"last_reload\":";
  if (last_reload_at_.empty()) {
    j += "null";
  } else {
    const ReloadResult result = reload_stats_.last_result;
    j += std::string("{\"ok\":") + b(result == ReloadResult::ok) + ",\"result\":" + q(to_string(result)) +
         ",\"at\":" + q(last_reload_at_) +
         ",\"error\":" + (last_reload_error_.empty() ? "null" : q(last_reload_error_)) + "}";
  }
  // Settings a reload changed that wait for a restart (reload_outcome.hpp).
  j += ",\"restart_required\":" + string_array(reload_stats_.pending_restart_keys);
  j += ",\"peers\":[";
  if (snap_->policy) {
    const std::set<std::string> joined = join_->joined_orgs();
    bool first = true;
    for (const auto& p : snap_->policy->peers()) {
      j += first ? "" : ",";
      first = false;
      j += "{\"org\":" + q(p.slug) + ",\"entity_uri\":" + q(p.entity_uri) + ",\"trust_level\":" + q(p.trust);
      const core::PeerHealth* h = nullptr;
      if (liveness_) {
        auto it = liveness_->health().find(p.slug);
        if (it != liveness_->health().end()) h = &it->second;
      }
      // A joined peer is `pending` until its first successful heartbeat (SPEC §13).
      const bool pending = (!h || h->state == core::PeerState::unknown) && joined.count(p.slug) != 0;
      j += ",\"state\":" + q(pending ? "pending" : h ? core::to_string(h->state) : "unknown");
      j += ",\"last_seen\":" + (h && h->last_seen_unix_ms ? std::to_string(h->last_seen_unix_ms / 1000) : std::string("null"));
      if (h && !h->last_error.empty()) j += ",\"last_error\":" + q(h->last_error);
      if (p.expires_at) {
        int64_t days = (p.expires_at - now) / 86400;
        j += ",\"expires_at\":" + std::to_string(p.expires_at) + ",\"days_left\":" + std::to_string(days);
      }
      j += ",\"trust_domain\":" + (p.trust_domain ? q(*p.trust_domain) : std::string("null"));
      j += ",\"trust_anchors\":" + trust_anchors_json(p.trust_anchors);
      j += ",\"last_certificate\":";
      if (auto it = seen_certs.find(p.slug); it != seen_certs.end()) {
        const PeerCertSeen& c = it->second;
        j += "{\"subject\":" + q(c.subject) + ",\"fingerprint_sha256\":" + q(c.sha256) +
             ",\"not_after\":" + std::to_string(c.not_after) +
             ",\"days_left\":" + std::to_string((c.not_after - now) / 86400) + "}";
      } else {
        j += "null";
      }
      j += "}";
    }
  }
  j += "],\"grants\":" + std::to_string(snap_->policy ? snap_->policy->grant_count() : 0);
  j += "," + limits_status_json(*shared_.limiter, leases_.get(), net::Loop::unix_ms());
  // Connections (ingress and egress listeners) accepted by each worker (SO_REUSEPORT spreads them).
  j += ",\"workers\":{\"count\":" + std::to_string(1 + threads_.size()) + ",\"accepted\":[" +
       std::to_string(worker0_->accepted());
  for (const auto& t : threads_) j += "," + std::to_string(t->accepted());
  j += "]}";
  j += ",\"connections\":{\"active\":" + std::to_string(shared_.ingress_count->active.load()) +
       ",\"accepted\":" + std::to_string(shared_.ingress_count->accepted.load()) +
       ",\"egress_active\":" + std::to_string(shared_.egress_count->active.load()) + "}";
  j += ",\"upstream\":{\"address\":" + q(cfg.ingress.upstream.text) + ",\"reachable\":" +
       b(probe_ && probe_->upstream_ok()) + "}";
  if (audit_) j += ",\"audit\":" + audit_status_json(*audit_);
  j += ",\"warnings\":[";
  for (size_t i = 0; i < warnings.size(); ++i) j += (i ? "," : "") + q(warnings[i]);
  j += "]}\n";
  return j;
}

}  // namespace fedproxy::app
