#include "proxy/app/reload_outcome.hpp"

#include <utility>

namespace fedproxy::app {

namespace {

std::string endpoint_text(const std::optional<policy::Endpoint>& e) { return e ? e->text : "null"; }

// Derived the same way the snapshot decides it (snapshot.cpp): no peers and
// no grants is authenticate_only mode, anything else is policy mode.
bool policy_mode(const policy::Config& c) { return !c.peers.empty() || !c.grants.empty(); }

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
std::vector<std::string> restart_required_keys(const policy::Config& a, const policy::Config& b) {
  std::vector<std::string> keys;
  auto changed = [&keys](bool differs, const char* key) {
    if (differs) keys.emplace_back(key);
  };
  // Bound once: listeners and the worker threads.
  changed(a.ingress.listen.text != b.ingress.listen.text, "ingress.listen");
  changed(endpoint_text(a.egress.listen) != endpoint_text(b.egress.listen), "egress.listen");
  changed(endpoint_text(a.admin.listen) != endpoint_text(b.admin.listen), "admin.listen");
  changed(a.workers != b.workers, "workers");
  // Objects built at start from these (upstream pool and probe, audit file,
  // heartbeat timer, the authorizer kind).
  changed(a.ingress.upstream.text != b.ingress.upstream.text, "ingress.upstream");
  changed(a.ingress.upstream_pool_max_idle != b.ingress.upstream_pool_max_idle, "ingress.upstream_pool_max_idle");
  changed(a.audit.path != b.audit.path, "audit.path");
  changed(a.egress.heartbeat_interval_ms != b.egress.heartbeat_interval_ms, "egress.heartbeat_interval_ms");
  changed(policy_mode(a) != policy_mode(b), "authenticate_only");
  // Connection options are copied into each listener at start.
  const auto& ta = a.timeouts;
  const auto& tb = b.timeouts;
  changed(ta.handshake_ms != tb.handshake_ms, "timeouts.handshake_ms");
  changed(ta.header_ms != tb.header_ms, "timeouts.header_ms");
  changed(ta.idle_ms != tb.idle_ms, "timeouts.idle_ms");
  changed(ta.upstream_connect_ms != tb.upstream_connect_ms, "timeouts.upstream_connect_ms");
  changed(ta.upstream_response_ms != tb.upstream_response_ms, "timeouts.upstream_response_ms");
  const auto& la = a.limits;
  const auto& lb = b.limits;
  changed(la.max_connections != lb.max_connections, "limits.max_connections");
  changed(la.max_header_bytes != lb.max_header_bytes, "limits.max_header_bytes");
  changed(la.max_request_line_bytes != lb.max_request_line_bytes, "limits.max_request_line_bytes");
  changed(la.max_header_count != lb.max_header_count, "limits.max_header_count");
  changed(la.max_conn_lifetime_ms != lb.max_conn_lifetime_ms, "limits.max_conn_lifetime_ms");
  changed(la.max_requests_per_conn != lb.max_requests_per_conn, "limits.max_requests_per_conn");
  changed(la.max_chunk_extension_bytes != lb.max_chunk_extension_bytes, "limits.max_chunk_extension_bytes");
  changed(la.max_chunk_extension_bytes_per_message != lb.max_chunk_extension_bytes_per_message,
          "limits.max_chunk_extension_bytes_per_message");
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
