// Prometheus counters and a latency histogram (text exposition format 0.0.4).
// Label values come from small fixed sets only (never paths or raw input):
// direction, configured peer slugs and grant ids, decisions, status codes,
// handshake-failure categories.
//
// One Metrics per worker loop, so the hot path only takes an uncontended
// lock; /metrics merges them (merge_into) and renders the sum.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace fedproxy::app {

struct RequestSample {
  const char* direction = "ingress";
  std::string_view peer, grant, decision;
  int status = 0;
  double duration_ms = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
};

class Metrics {
 public:
  static constexpr std::array<double, 12> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,   0.5,   1,    2.5,   10};

  void count_request(const RequestSample& s);
  void count_handshake_failure(const std::string& reason);  // mapped to a category
  void count_reload(bool ok);

  // Adds this worker's counters to `total` (another instance).
  void merge_into(Metrics& total) const;

  // Gauges sampled at render time.
  std::string render(uint64_t active_connections, uint64_t upstream_idle, bool insecure) const;

  static std::string handshake_reason_category(const std::string& reason);

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> requests_;  // key: direction\0peer\0grant\0decision\0status
  std::map<std::string, uint64_t> handshake_failures_;
  std::map<std::string, uint64_t> reloads_ = {{"success", 0}, {"failure", 0}};
  std::array<uint64_t, kLatencyBuckets.size()> latency_counts_{};
  uint64_t latency_count_ = 0;
  double latency_sum_s_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace fedproxy::app
