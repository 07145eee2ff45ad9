// The per-request side of limits (limit_cell.hpp) with an injected clock:
// each mode's decision, the fallback share, leased tokens, quota days.

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "policy/limit_cell.hpp"

using namespace fedproxy::policy;

namespace {
LimitParams rate(int64_t rps, uint32_t burst) {
  LimitParams p;
  p.has_rate = true;
  p.interval_us = 1000000 / rps;
  p.burst = burst;
  p.tolerance_us = (int64_t{burst} - 1) * p.interval_us;
  return p;
}
int count_ok(LimitCell& c, const LimitParams& p, LimitMode m, uint32_t replicas, int64_t now_us, int tries) {
  int ok = 0;
  for (int i = 0; i < tries; ++i) ok += take_rate(c, p, m, replicas, now_us).ok ? 1 : 0;
  return ok;
}
constexpr int64_t kNoonMs = 1796731200000;  // 2026-12-08T12:00:00Z
}  // namespace

TEST_CASE("local: exactly the burst at once, then one per interval") {
  LimitCell c;
  const LimitParams p = rate(100, 10);
  CHECK(count_ok(c, p, LimitMode::local, 1, 1'000'000, 50) == 10);
  CHECK(count_ok(c, p, LimitMode::local, 1, 1'000'000 + 10'000, 5) == 1);
  Take t = take_rate(c, p, LimitMode::local, 1, 1'000'000 + 10'000);
  CHECK_FALSE(t.ok);
  CHECK(t.wait_us == 10'000);
}

TEST_CASE("fallback: the replica's share of rate and burst") {
  const LimitParams p = rate(90, 9);
  for (uint32_t replicas : {1u, 3u, 9u, 20u}) {
    CAPTURE(replicas);
    LimitCell c;
    const int burst = static_cast<int>(std::max<uint32_t>(1, 9 / replicas));
    CHECK(count_ok(c, p, LimitMode::fallback, replicas, 5'000'000, 100) == burst);
    // Over one second after that: rps / replicas more.
    int more = 0;
    for (int ms = 1; ms <= 1000; ++ms) more += count_ok(c, p, LimitMode::fallback, replicas, 5'000'000 + ms * 1000, 1);
    CHECK(more == static_cast<int>(90 / replicas));
  }
}

TEST_CASE("shared: only leased tokens pass; refusal waits at least an interval") {
  LimitCell c;
  const LimitParams p = rate(100, 10);
  CHECK_FALSE(take_rate(c, p, LimitMode::shared, 3, 0).ok);
  c.rate_granted.fetch_add(4);
  CHECK(count_ok(c, p, LimitMode::shared, 3, 0, 10) == 4);
  c.rate_wait_us.store(250'000);
  Take t = take_rate(c, p, LimitMode::shared, 3, 0);
  CHECK_FALSE(t.ok);
  CHECK(t.wait_us == 250'000);
  CHECK(c.rate_used.load() == 4);  // refusals take nothing
}

TEST_CASE("shared: concurrent takes never exceed the granted tokens") {
  LimitCell c;
  const LimitParams p = rate(1000, 1000);
  c.rate_granted.store(5000);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3000; ++i) ok += take_rate(c, p, LimitMode::shared, 1, 0).ok ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok.load() == 5000);
}

TEST_CASE("reject: every take refused") {
  LimitCell c;
  CHECK_FALSE(take_rate(c, rate(100, 100), LimitMode::reject, 1, 0).ok);
}

TEST_CASE("requests per day: local count, shared reservation + credit, fallback share, new day") {
  LimitParams p;
  p.requests_per_day = 5;
  LimitCell c;
  int ok = 0;
  for (int i = 0; i < 9; ++i) ok += take_request_quota(c, p, LimitMode::local, 1, kNoonMs).ok ? 1 : 0;
  CHECK(ok == 5);
  Take t = take_request_quota(c, p, LimitMode::local, 1, kNoonMs);
  CHECK_FALSE(t.ok);
  CHECK(t.wait_us == 12 * 3600 * int64_t{1000000});  // Retry-After: the end of the UTC day
  // The next day starts from zero.
  CHECK(take_request_quota(c, p, LimitMode::local, 1, kNoonMs + 86400000).ok);
  CHECK(c.requests_used.load() == 1);

  LimitCell s;
  p.requests_per_day = 100;
  s.day.store(kNoonMs / 86400000);
  s.requests_reserved.store(3);
  s.requests_credit.store(2);
  ok = 0;
  for (int i = 0; i < 10; ++i) ok += take_request_quota(s, p, LimitMode::shared, 3, kNoonMs).ok ? 1 : 0;
  CHECK(ok == 5);
  give_back_request(s);
  CHECK(s.requests_used.load() == 4);

  LimitCell f;
  ok = 0;
  for (int i = 0; i < 100; ++i) ok += take_request_quota(f, p, LimitMode::fallback, 3, kNoonMs).ok ? 1 : 0;
  CHECK(ok == 34);  // ceil(100 / 3)
}

TEST_CASE("bytes per day: refused once used up, the others' bytes count when shared") {
  LimitParams p;
  p.bytes_per_day = 1000;
  LimitCell c;
  roll_day(c, kNoonMs / 86400000);
  c.bytes_used.store(600);
  CHECK(check_bytes_quota(c, p, LimitMode::local, kNoonMs).ok);
  c.bytes_others.store(400);
  CHECK(check_bytes_quota(c, p, LimitMode::local, kNoonMs).ok);
  CHECK_FALSE(check_bytes_quota(c, p, LimitMode::shared, kNoonMs).ok);
  CHECK_FALSE(check_bytes_quota(c, p, LimitMode::fallback, kNoonMs).ok);
  CHECK(check_bytes_quota(c, p, LimitMode::shared, kNoonMs + 86400000).ok);  // tomorrow
}

TEST_CASE("seconds to the end of the UTC day") {
  CHECK(seconds_to_end_of_day(kNoonMs) == 43200);
  CHECK(seconds_to_end_of_day(kNoonMs + 43200000 - 1) == 1);
  CHECK(seconds_to_end_of_day(kNoonMs - 43200000) == 86400);
}
