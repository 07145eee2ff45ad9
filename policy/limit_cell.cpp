#include "policy/limit_cell.hpp"

#include <algorithm>

namespace fedproxy::policy {

namespace {
constexpr int64_t kDayMs = 86400000;

// t conforms when max(tat, t) - t <= tolerance, and then moves tat on by
// one interval: exactly `burst` back-to-back requests on a full bucket and
// one more per interval after that. Lock-free, exact under concurrency.
Take take_gcra(std::atomic<int64_t>& tat_us, int64_t interval_us, int64_t tolerance_us, int64_t now_us) noexcept {
  int64_t tat = tat_us.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now_us);
    if (base - now_us > tolerance_us) return {false, base - tolerance_us - now_us};
    if (tat_us.compare_exchange_weak(tat, base + interval_us, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      return {true, 0};
    }
  }
}
}  // namespace

const char* to_string(LimitMode m) {
  switch (m) {
    case LimitMode::local: return "local";
    case LimitMode::shared: return "shared";
    case LimitMode::fallback: return "fallback";
    case LimitMode::reject: return "reject";
  }
  return "local";
}

int64_t utc_day(int64_t now_unix_ms) noexcept { return now_unix_ms / kDayMs; }

int64_t seconds_to_end_of_day(int64_t now_unix_ms) noexcept {
  const int64_t left_ms = (utc_day(now_unix_ms) + 1) * kDayMs - now_unix_ms;
  return std::max<int64_t>(1, (left_ms + 999) / 1000);
}

void roll_day(LimitCell& c, int64_t today) noexcept {
  int64_t day = c.day.load(std::memory_order_acquire);
  if (day >= today) return;
  if (c.day.compare_exchange_strong(day, today, std::memory_order_acq_rel)) {
    c.requests_used.store(0, std::memory_order_relaxed);
    c.requests_reserved.store(0, std::memory_order_relaxed);
    c.requests_credit.store(0, std::memory_order_relaxed);
    c.bytes_used.store(0, std::memory_order_relaxed);
    c.bytes_others.store(0, std::memory_order_relaxed);
  }
}

Take take_rate(LimitCell& c, const LimitParams& p, LimitMode mode, uint32_t replicas, int64_t now_us) noexcept {
  switch (mode) {
    case LimitMode::local:
      return take_gcra(c.tat_us, p.interval_us, p.tolerance_us, now_us);
    case LimitMode::fallback: {
      // This replica's share: rps / replicas with burst / replicas (≥ 1).
      const int64_t n = std::max<uint32_t>(1, replicas);
      const int64_t interval = p.interval_us * n;
      const int64_t burst = std::max<int64_t>(1, p.burst / n);
      return take_gcra(c.tat_us, interval, (burst - 1) * interval, now_us);
    }
    case LimitMode::shared: {
      const int64_t used = c.rate_used.fetch_add(1, std::memory_order_acq_rel) + 1;
      if (used <= c.rate_granted.load(std::memory_order_acquire)) return {true, 0};
      c.rate_used.fetch_sub(1, std::memory_order_acq_rel);
      return {false, std::max(p.interval_us, c.rate_wait_us.load(std::memory_order_relaxed))};
    }
    case LimitMode::reject:
      return {false, 1000000};
  }
  return {false, 1000000};
}

Take take_request_quota(LimitCell& c, const LimitParams& p, LimitMode mode, uint32_t replicas,
                        int64_t now_unix_ms) noexcept {
  roll_day(c, utc_day(now_unix_ms));
  int64_t allowed = p.requests_per_day;
  if (mode == LimitMode::shared) {
    allowed = c.requests_reserved.load(std::memory_order_acquire) + c.requests_credit.load(std::memory_order_relaxed);
  } else if (mode == LimitMode::fallback) {
    const int64_t n = std::max<uint32_t>(1, replicas);
    allowed = std::max(c.requests_reserved.load(std::memory_order_acquire), (p.requests_per_day + n - 1) / n);
  }
  const int64_t used = c.requests_used.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (used <= allowed) return {true, 0};
  c.requests_used.fetch_sub(1, std::memory_order_acq_rel);
  return {false, seconds_to_end_of_day(now_unix_ms) * 1000000};
}

void give_back_request(LimitCell& c) noexcept { c.requests_used.fetch_sub(1, std::memory_order_acq_rel); }

Take check_bytes_quota(const LimitCell& c, const LimitParams& p, LimitMode mode, int64_t now_unix_ms) noexcept {
  if (c.day.load(std::memory_order_acquire) < utc_day(now_unix_ms)) return {true, 0};  // a new day
  int64_t used = c.bytes_used.load(std::memory_order_relaxed);
  if (mode == LimitMode::shared || mode == LimitMode::fallback) used += c.bytes_others.load(std::memory_order_relaxed);
  if (used < p.bytes_per_day) return {true, 0};
  return {false, seconds_to_end_of_day(now_unix_ms) * 1000000};
}

}  // namespace fedproxy::policy
