// Data-path counters and the request latency histogram (Prometheus text
// format 0.0.4). Label values come from small fixed sets only (never paths or
// raw input): direction, configured peer slugs and grant ids, decisions,
// status codes, handshake-failure categories.
//
// One Metrics per worker loop, so the hot path only takes an uncontended
// lock; /metrics merges them (merge_into) and renders the sum. Everything is
// kept as integers (latency in nanoseconds from the monotonic clock) and
// rendered exactly (prom_text.hpp). Control-plane series (build info,
// certificate expiry, reloads, audit) are ops_metrics.hpp's.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace fedproxy::app {

// The verified certificate a configured peer presented, as last seen.
struct PeerCertSeen {
  int64_t not_after = 0;  // unix seconds
  std::string subject;
  std::string sha256;     // of the DER, 64 lowercase hex
  uint64_t seen_ns = 0;   // net::Loop::hrtime_ns() when last seen: the latest wins a merge
};

struct RequestSample {
  const char* direction = "ingress";
  std::string_view peer, grant, decision;
  int status = 0;
  uint64_t duration_ns = 0;  // monotonic clock
  uint64_t bytes_in = 0, bytes_out = 0;
  // Set when the request came with the verified certificate of a configured
  // peer (`peer` is then its slug): one expiry series per peer org.
  bool peer_cert = false;
  int64_t peer_cert_not_after = 0;
  std::string_view peer_cert_subject, peer_cert_sha256;
  uint64_t seen_ns = 0;
};

class Metrics {
 public:
  // Upper bounds in nanoseconds: 100 µs … 60 s (the default upstream
  // response timeout), sub-millisecond buckets for a proxy on loopback.
  static constexpr std::array<uint64_t, 18> kLatencyBucketsNs = {
      100'000,       250'000,       500'000,        1'000'000,      2'500'000,      5'000'000,
      10'000'000,    25'000'000,    50'000'000,     100'000'000,    250'000'000,    500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000,  10'000'000'000, 30'000'000'000, 60'000'000'000};

  void count_request(const RequestSample& s);
  void count_handshake_failure(const std::string& reason);  // mapped to a category

  // Adds this worker's counters to `total` (another instance).
  void merge_into(Metrics& total) const;

  // Gauges sampled at render time.
  std::string render(uint64_t active_connections, uint64_t upstream_idle, bool insecure) const;

  // The latest certificate seen per peer slug.
  std::map<std::string, PeerCertSeen> peer_certs() const;

  static std::string handshake_reason_category(const std::string& reason);

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> requests_;  // key: direction\0peer\0grant\0decision\0status
  std::map<std::string, uint64_t> handshake_failures_;
  // Per bucket, not cumulative: [i] counts durations in (bound[i-1], bound[i]],
  // the last slot those above every bound.
  std::array<uint64_t, kLatencyBucketsNs.size() + 1> latency_counts_{};
  uint64_t latency_sum_ns_ = 0;  // wraps after 584 years of summed latency
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::map<std::string, PeerCertSeen, std::less<>> peer_certs_;
};

}  // namespace fedproxy::app
