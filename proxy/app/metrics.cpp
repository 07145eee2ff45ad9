#include "proxy/app/metrics.hpp"

#include <algorithm>
#include <charconv>

#include "proxy/app/prom_text.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

std::string Metrics::handshake_reason_category(const std::string& r) { return tls::failure_code_of(r); }

void Metrics::count_request(const RequestSample& r) {
  // The key is built in a per-thread buffer and looked up first: a label set
  // seen before (nearly every request) allocates nothing.
  thread_local std::string key;
  key.clear();
  char status[16];
  auto st = std::to_chars(status, status + sizeof status, r.status);
  key.append(r.direction).append(1, '\0').append(r.peer).append(1, '\0').append(r.grant);
  key.append(1, '\0').append(r.decision).append(1, '\0').append(status, static_cast<size_t>(st.ptr - status));
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBucketsNs.begin(), kLatencyBucketsNs.end(), r.duration_ns) - kLatencyBucketsNs.begin());
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = requests_.find(key); it != requests_.end()) {
    ++it->second;
  } else {
    requests_.emplace(key, 1);
  }
  ++latency_counts_[bucket];
  latency_sum_ns_ += r.duration_ns;
  bytes_in_ += r.bytes_in;
  bytes_out_ += r.bytes_out;
  if (r.peer_cert) {
    auto it = peer_certs_.find(r.peer);
    if (it == peer_certs_.end()) it = peer_certs_.emplace(std::string(r.peer), PeerCertSeen{}).first;
    PeerCertSeen& seen = it->second;
    if (seen.sha256 != r.peer_cert_sha256) {
      seen.sha256 = r.peer_cert_sha256;
      seen.subject = r.peer_cert_subject;
      seen.not_after = r.peer_cert_not_after;
    }
    seen.seen_ns = r.seen_ns;
  }
}

void Metrics::count_handshake_failure(const std::string& reason) {
  std::string category = handshake_reason_category(reason);
  std::lock_guard<std::mutex> lock(mu_);
  ++handshake_failures_[category];
}

void Metrics::merge_into(Metrics& total) const {
  std::scoped_lock lock(mu_, total.mu_);
  for (const auto& [k, n] : requests_) total.requests_[k] += n;
  for (const auto& [k, n] : handshake_failures_) total.handshake_failures_[k] += n;
  for (size_t i = 0; i < latency_counts_.size(); ++i) total.latency_counts_[i] += latency_counts_[i];
  total.latency_sum_ns_ += latency_sum_ns_;
  total.bytes_in_ += bytes_in_;
  total.bytes_out_ += bytes_out_;
  for (const auto& [peer, seen] : peer_certs_) {
    PeerCertSeen& t = total.peer_certs_[peer];
    if (seen.seen_ns >= t.seen_ns) t = seen;
  }
}

std::map<std::string, PeerCertSeen> Metrics::peer_certs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {peer_certs_.begin(), peer_certs_.end()};
}

std::string Metrics::render(uint64_t active_connections, uint64_t upstream_idle, bool insecure) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(4096);
  prom::family(out, "fedproxy_requests_total",
               "counter", "Federated requests by direction, peer, grant, decision and HTTP status.");
  static constexpr const char* kNames[] = {"direction", "peer", "grant", "decision", "status"};
  for (const auto& [key, n] : requests_) {
    prom::Label labels[5];
    size_t from = 0;
    for (size_t i = 0; i < 5; ++i) {
      size_t to = i < 4 ? key.find('\0', from) : key.size();
      labels[i] = {kNames[i], std::string_view(key).substr(from, to - from)};
      from = to + 1;
    }
    prom::sample(out, "fedproxy_requests_total", labels, 5, std::to_string(n));
  }
  prom::family(out, "fedproxy_request_duration_seconds", "histogram",
               "Time from request head to end of response (monotonic clock).");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBucketsNs.size(); ++i) {
    cumulative += latency_counts_[i];
    std::string le = prom::decimal(kLatencyBucketsNs[i], 9);
    prom::sample(out, "fedproxy_request_duration_seconds_bucket", {{"le", le}}, cumulative);
  }
  cumulative += latency_counts_.back();
  prom::sample(out, "fedproxy_request_duration_seconds_bucket", {{"le", "+Inf"}}, cumulative);
  prom::sample(out, "fedproxy_request_duration_seconds_sum", {}, prom::decimal(latency_sum_ns_, 9));
  prom::sample(out, "fedproxy_request_duration_seconds_count", {}, cumulative);
  prom::family(out, "fedproxy_handshake_failures_total", "counter", "Refused TLS handshakes by reason.");
  // Every code is exported from the start (at 0), so rate() and alerts work
  // before the first failure; the set is closed (tls::kFailureCodes).
  for (const char* reason : tls::kFailureCodes) {
    auto it = handshake_failures_.find(reason);
    prom::sample(out, "fedproxy_handshake_failures_total", {{"reason", reason}},
                 it == handshake_failures_.end() ? uint64_t{0} : it->second);
  }
  prom::family(out, "fedproxy_bytes_received_total", "counter", "Request body bytes received from peers.");
  prom::sample(out, "fedproxy_bytes_received_total", {}, bytes_in_);
  prom::family(out, "fedproxy_bytes_sent_total", "counter", "Response body bytes sent to peers.");
  prom::sample(out, "fedproxy_bytes_sent_total", {}, bytes_out_);
  prom::family(out, "fedproxy_active_connections", "gauge", "Open ingress connections.");
  prom::sample(out, "fedproxy_active_connections", {}, active_connections);
  prom::family(out, "fedproxy_upstream_idle_connections", "gauge", "Idle pooled connections to the local app.");
  prom::sample(out, "fedproxy_upstream_idle_connections", {}, upstream_idle);
  prom::family(out, "fedproxy_insecure_mode", "gauge", "1 when ingress runs without TLS (FEDPROXY_INSECURE).");
  prom::sample(out, "fedproxy_insecure_mode", {}, uint64_t{insecure ? 1u : 0u});
  return out;
}

}  // namespace fedproxy::app
