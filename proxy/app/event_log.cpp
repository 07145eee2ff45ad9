#include "proxy/app/event_log.hpp"

#include <string_view>

#include "proxy/app/audit_sink.hpp"
#include "proxy/app/log.hpp"
#include "proxy/base/outcome.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

namespace {
// The log line carries the path only: a query string may hold secrets
// (tokens, personal data) and logs are kept and shipped far more widely
// than the audit log, which keeps only the query's hash (SPEC §10).
std::string_view path_only(std::string_view target) { return target.substr(0, target.find('?')); }
}  // namespace

void EventLog::on_handshake_failed(const std::string& peer_address, const std::string& reason) {
  handshake_failures_.fetch_add(1, std::memory_order_relaxed);
  metrics_.count_handshake_failure(reason);
  // reason: one word of tls::kFailureCodes (as in the metric); detail: the text.
  std::string_view detail;
  const char* code = tls::failure_code_of(reason, &detail);
  LogLine("warn", "handshake_failed").str("peer_addr", peer_address).str("reason", code).str("detail", detail);
}

void EventLog::on_request_done(const core::RequestRecord& r) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  // Peer slugs come from the configured peer list: a bounded label set.
  // Grants are configured ones only (the policy resolves them), also bounded.
  RequestSample sample;
  sample.direction = r.direction;
  sample.peer = r.peer_slug.empty() ? std::string_view("unknown") : std::string_view(r.peer_slug);
  sample.grant = r.grant.empty() ? std::string_view("none") : std::string_view(r.grant);
  sample.decision = base::to_string(r.decision);
  sample.status = r.status;
  sample.duration_ns = r.duration_ns;
  sample.bytes_in = r.bytes_in;
  sample.bytes_out = r.bytes_out;
  // The certificate a configured peer presented (ingress): its expiry is
  // exported per peer org, the latest one seen.
  if (r.peer && r.peer->present && !r.peer_slug.empty()) {
    sample.peer_cert = true;
    sample.peer_cert_not_after = r.peer->not_after;
    sample.peer_cert_subject = r.peer->subject;
    sample.peer_cert_sha256 = r.peer->der_sha256;
    sample.seen_ns = net::Loop::hrtime_ns();
  }
  metrics_.count_request(sample);
  // Quota bytes: the body bytes of what was forwarded, both ways, as streamed.
  if (limiter_ && !r.grant.empty() && std::string_view(r.direction) == "ingress" &&
      (r.decision == base::Decision::allow || r.decision == base::Decision::shadow_deny)) {
    limiter_->count_bytes(r.grant, static_cast<int64_t>(r.bytes_in + r.bytes_out), net::Loop::unix_ms());
  }
  if (audit_) audit_->request(r);
  if (!log_requests_.load(std::memory_order_relaxed)) return;
  LogLine line("info", "request");
  line.str("request_id", r.request_id).str("peer_addr", r.peer_address);
  if (!r.peer_slug.empty()) line.str("peer_org", r.peer_slug);
  if (!r.entity_uri.empty()) {
    line.str("entity_uri", r.entity_uri);
  } else if (r.peer && !r.peer->uri_sans.empty()) {
    line.str("entity_uri", r.peer->uri_sans.front());
  }
  if (!r.grant.empty()) line.str("grant", r.grant);
  if (!r.resource.empty()) line.str("resource", r.resource);
  line.str("method", r.method)
      .str("path", path_only(r.target))
      .num("status", r.status)
      .str("decision", base::to_string(r.decision));
  if (!r.reason.empty()) line.str("reason", r.reason);
  line.str("outcome", base::to_string(r.outcome));
  line.num("bytes_in", static_cast<int64_t>(r.bytes_in))
      .num("bytes_out", static_cast<int64_t>(r.bytes_out))
      .real("duration_ms", r.duration_ms);
}

void EventLog::on_connection_event(const std::string& peer_address, const std::string& what,
                                   const std::string& detail) {
  LogLine("warn", what).str("peer_addr", peer_address).str("detail", detail);
}

}  // namespace fedproxy::app
