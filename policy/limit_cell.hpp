// The mutable state of one limited grant (SPEC §4 rate limit, §14 quotas)
// and the decisions taken on it per request. Shared by the worker threads
// (atomics, no lock) and, with a shared backend, written by the lease
// manager that keeps it supplied from Redis (proxy/core/lease_manager.hpp):
// a request only ever reads and bumps counters here, it never waits.
#pragma once

#include <atomic>
#include <cstdint>

namespace fedproxy::policy {

// Where limits are decided, for all grants of the process at once.
enum class LimitMode : uint8_t {
  local,     // backend local: a token bucket per grant in this process
  shared,    // backend redis, reachable: tokens and quota leased in batches
  fallback,  // backend redis, unreachable: local buckets of limit / replicas
  reject,    // backend redis, unreachable, on_backend_failure reject: 503
};
const char* to_string(LimitMode m);  // "local" | "shared" | "fallback" | "reject"

// What one grant allows (copied from the compiled snapshot).
struct LimitParams {
  bool has_rate = false;
  int64_t interval_us = 0;   // 1e6 / rps, ≥ 1
  int64_t tolerance_us = 0;  // (burst - 1) * interval
  uint32_t burst = 0;
  int64_t requests_per_day = 0;  // 0 = no such quota
  int64_t bytes_per_day = 0;
};

struct alignas(64) LimitCell {
  // GCRA ("virtual scheduling" token bucket): the theoretical arrival time,
  // in microseconds. Used by `local`, and by `fallback` with the replica's
  // share of the limit.
  std::atomic<int64_t> tat_us{0};
  // `shared` rate: tokens granted by leases and tokens used, both only ever
  // growing, so a take is one fetch_add and a compare.
  std::atomic<int64_t> rate_granted{0};
  std::atomic<int64_t> rate_used{0};
  std::atomic<int64_t> rate_wait_us{0};  // the last lease's wait until Redis has tokens again
  // Quotas count per UTC day (day = Unix days); the counters below belong
  // to `day` and restart at zero on the next one.
  std::atomic<int64_t> day{-1};
  std::atomic<int64_t> requests_used{0};      // admitted by this replica
  std::atomic<int64_t> requests_reserved{0};  // `shared`: reserved in Redis by this replica
  std::atomic<int64_t> requests_credit{0};    // `shared`: admitted beyond the reservation until the next lease
  std::atomic<int64_t> bytes_used{0};         // body bytes both ways, this replica
  std::atomic<int64_t> bytes_others{0};       // `shared`: the other replicas' bytes (last read)
};

// The UTC day of a Unix time in milliseconds, and the seconds left in it
// (at least 1): the Retry-After of quota_exceeded.
int64_t utc_day(int64_t now_unix_ms) noexcept;
int64_t seconds_to_end_of_day(int64_t now_unix_ms) noexcept;

// Moves the cell's quota counters to `today` if they count an earlier day.
void roll_day(LimitCell& c, int64_t today) noexcept;

struct Take {
  bool ok = true;
  int64_t wait_us = 0;  // when refused: until a retry may pass
};

// One rate-limit token (p.has_rate), in the given mode.
Take take_rate(LimitCell& c, const LimitParams& p, LimitMode mode, uint32_t replicas, int64_t now_us) noexcept;
// One request of the daily quota (counts it); give_back_request undoes it
// when a later step refuses the request.
Take take_request_quota(LimitCell& c, const LimitParams& p, LimitMode mode, uint32_t replicas,
                        int64_t now_unix_ms) noexcept;
void give_back_request(LimitCell& c) noexcept;
// Whether the day's bytes are not used up yet (bytes are counted after each
// exchange: the request that crosses the line completes, the next is refused).
Take check_bytes_quota(const LimitCell& c, const LimitParams& p, LimitMode mode, int64_t now_unix_ms) noexcept;

}  // namespace fedproxy::policy
