#include "proxy/app/metrics.hpp"

#include <charconv>
#include <cstdio>

namespace fedproxy::app {

namespace {
std::string fmt_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}
// Prometheus label values: escape backslash, quote and newline.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

std::string Metrics::handshake_reason_category(const std::string& r) {
  auto has = [&](const char* s) { return r.find(s) != std::string::npos; };
  if (has("no client certificate")) return "no_client_certificate";
  if (has("revoked")) return "revoked";
  if (has("CRL")) return "crl";
  if (has("expired")) return "expired";
  if (has("not yet valid")) return "not_yet_valid";
  if (has("not trusted") || has("unknown CA")) return "untrusted";
  if (has("key usage")) return "key_usage";
  if (has("version")) return "protocol_version";
  if (has("timed out")) return "timeout";
  if (has("closed")) return "peer_closed";
  return "other";
}

void Metrics::count_request(const RequestSample& r) {
  // The key is built in a per-thread buffer and looked up first: a label set
  // seen before (nearly every request) allocates nothing.
  thread_local std::string key;
  key.clear();
  char status[16];
  auto st = std::to_chars(status, status + sizeof status, r.status);
  key.append(r.direction).append(1, '\0').append(r.peer).append(1, '\0').append(r.grant);
  key.append(1, '\0').append(r.decision).append(1, '\0').append(status, static_cast<size_t>(st.ptr - status));
  double s = r.duration_ms / 1000.0;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = requests_.find(key); it != requests_.end()) {
    ++it->second;
  } else {
    requests_.emplace(key, 1);
  }
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    if (s <= kLatencyBuckets[i]) ++latency_counts_[i];
  }
  ++latency_count_;
  latency_sum_s_ += s;
  bytes_in_ += r.bytes_in;
  bytes_out_ += r.bytes_out;
}

void Metrics::count_handshake_failure(const std::string& reason) {
  std::string category = handshake_reason_category(reason);
  std::lock_guard<std::mutex> lock(mu_);
  ++handshake_failures_[category];
}

void Metrics::count_reload(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  ++reloads_[ok ? "success" : "failure"];
}

void Metrics::merge_into(Metrics& total) const {
  std::scoped_lock lock(mu_, total.mu_);
  for (const auto& [k, n] : requests_) total.requests_[k] += n;
  for (const auto& [k, n] : handshake_failures_) total.handshake_failures_[k] += n;
  for (const auto& [k, n] : reloads_) total.reloads_[k] += n;
  for (size_t i = 0; i < latency_counts_.size(); ++i) total.latency_counts_[i] += latency_counts_[i];
  total.latency_count_ += latency_count_;
  total.latency_sum_s_ += latency_sum_s_;
  total.bytes_in_ += bytes_in_;
  total.bytes_out_ += bytes_out_;
}

std::string Metrics::render(uint64_t active_connections, uint64_t upstream_idle, bool insecure) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(4096);
  out += "# HELP fedproxy_requests_total Federated requests by direction, peer, grant, decision and HTTP status.\n";
  out += "# TYPE fedproxy_requests_total counter\n";
  static constexpr const char* kNames[] = {"direction", "peer", "grant", "decision", "status"};
  for (const auto& [key, n] : requests_) {
    out += "fedproxy_requests_total{";
    size_t from = 0;
    for (size_t i = 0; i < 5; ++i) {
      size_t to = i < 4 ? key.find('\0', from) : key.size();
      out += (i ? ",": "");
      out += kNames[i];
      out += "=\"" + label(key.substr(from, to - from)) + "\"";
      from = to + 1;
    }
    out += "} " + std::to_string(n) + "\n";
  }
  out += "# HELP fedproxy_request_duration_seconds Time from request head to end of response.\n";
  out += "# TYPE fedproxy_request_duration_seconds histogram\n";
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    out += "fedproxy_request_duration_seconds_bucket{le=\"" + fmt_double(kLatencyBuckets[i]) + "\"} " +
           std::to_string(latency_counts_[i]) + "\n";
  }
  out += "fedproxy_request_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(latency_count_) + "\n";
  out += "fedproxy_request_duration_seconds_sum " + fmt_double(latency_sum_s_) + "\n";
  out += "fedproxy_request_duration_seconds_count " + std::to_string(latency_count_) + "\n";
  out += "# HELP fedproxy_handshake_failures_total Refused TLS handshakes by reason.\n";
  out += "# TYPE fedproxy_handshake_failures_total counter\n";
  for (const auto& [reason, n] : handshake_failures_) {
    out += "fedproxy_handshake_failures_total{reason=\"" + label(reason) + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP fedproxy_reloads_total Certificate/policy reloads by result.\n";
  out += "# TYPE fedproxy_reloads_total counter\n";
  for (const auto& [result, n] : reloads_) {
    out += "fedproxy_reloads_total{result=\"" + result + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP fedproxy_bytes_received_total Request body bytes received from peers.\n";
  out += "# TYPE fedproxy_bytes_received_total counter\n";
  out += "fedproxy_bytes_received_total " + std::to_string(bytes_in_) + "\n";
  out += "# HELP fedproxy_bytes_sent_total Response body bytes sent to peers.\n";
  out += "# TYPE fedproxy_bytes_sent_total counter\n";
  out += "fedproxy_bytes_sent_total " + std::to_string(bytes_out_) + "\n";
  out += "# HELP fedproxy_active_connections Open ingress connections.\n";
  out += "# TYPE fedproxy_active_connections gauge\n";
  out += "fedproxy_active_connections " + std::to_string(active_connections) + "\n";
  out += "# HELP fedproxy_upstream_idle_connections Idle pooled connections to the local app.\n";
  out += "# TYPE fedproxy_upstream_idle_connections gauge\n";
  out += "fedproxy_upstream_idle_connections " + std::to_string(upstream_idle) + "\n";
  out += "# HELP fedproxy_insecure_mode 1 when ingress runs without TLS (FEDPROXY_INSECURE).\n";
  out += "# TYPE fedproxy_insecure_mode gauge\n";
  out += std::string("fedproxy_insecure_mode ") + (insecure ? "1" : "0") + "\n";
  return out;
}

}  // namespace fedproxy::app
