#include "proxy/app/reload_outcome.hpp"

#include <utility>

namespace fedproxy::app {

namespace {

std::string endpoint_text(const std::optional<config::Endpoint>& e) { return e ? e->text : "null"; }

// Derived the same way the snapshot decides it (snapshot.cpp): no peers and
// no grants is authenticate_only mode, anything else is policy mode.
bool policy_mode(const config::Config& c) { return !c.peers.empty() || !c.grants.empty(); }

}  // namespace

const char* to_string(ReloadResult r) {
  switch (r) {
    case ReloadResult::ok: return "ok";
    case ReloadResult::failed: return "failed";
    case ReloadResult::restart_required: return "restart_required";
  }
  return "failed";
}

// One line per setting that is read once at start. Keep it in step with what
// Runtime::apply and Worker::apply hand over on a reload: a setting that
// starts applying at run time leaves this list.
std::vector<std::string> restart_required_keys(const config::Config& a, const config::Config& b) {
  std::vector<std::string> keys;
  auto changed = [&keys](bool differs, const char* key) {
    if (differs) keys.emplace_back(key);
  };
  // Bound once: listeners and the worker threads.
  changed(a.ingress.listen.text != b.ingress.listen.text, "ingress.listen");
  changed(endpoint_text(a.egress.listen) != endpoint_text(b.egress.listen), "egress.listen");
  changed(endpoint_text(a.admin.listen) != endpoint_text(b.admin.listen), "admin.listen");
  changed(a.workers != b.workers, "workers");
  changed(a.rate_limits.backend != b.rate_limits.backend, "rate_limits.backend");
  changed(a.rate_limits.redis != b.rate_limits.redis, "rate_limits.redis_url");
  // Objects built at start from these (upstream pool and probe, audit file,
  // heartbeat timer, the authorizer kind).
  changed(a.ingress.upstream.text != b.ingress.upstream.text, "ingress.upstream");
  changed(a.audit.path != b.audit.path, "audit.path");
  changed(a.egress.heartbeat_interval_ms != b.egress.heartbeat_interval_ms, "egress.heartbeat_interval_ms");
  changed(policy_mode(a) != policy_mode(b), "authenticate_only");
  // Timeouts, limits, http rules and the idle-pool size apply at a reload
  // (Worker::apply -> ProxyServer/EgressRouter::set_run_time_options); a
  // pending graceful stop keeps the shutdown_grace_ms it started with.
  // audit.on_failure applies at a reload too (Runtime::apply ->
  // AuditSink::set_on_failure).
  return keys;
}

void ReloadStats::record(ReloadResult r, int64_t now_unix, std::vector<std::string> restart_keys) {
  ++counts[static_cast<size_t>(r)];
  last_result = r;
  if (r == ReloadResult::failed) return;  // the running snapshot, and what it waits for, are unchanged
  last_success_unix = now_unix;
  pending_restart_keys = std::move(restart_keys);
}

}  // namespace fedproxy::app
