// Token buckets per grant (SPEC §4): burst N gives exactly N, refill with an
// injected clock, Retry-After, state kept across rebind, exactness under
// concurrency, shadow mode.

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "policy_fixture.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;
using namespace fedproxy::policy::testing;

namespace {

std::string limited_config(const std::string& rate_limit, const std::string& extra_grant = "",
                           const std::string& extra = "") {
  return config_json("[" +
                         grant(kGrantA, R"("peer": "partner-labs", "resources": ["tasks"],
                         "status": "active", "rate_limit": )" + rate_limit + extra_grant) +
                         "]",
                     extra);
}

}  // namespace

TEST_CASE("burst N: N allowed, the next refused with Retry-After") {
  auto snap = compile_ok(limited_config(R"({"rps": 2, "burst": 5})"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    Decision d = call.run(*snap, limiter);
    CHECK(d.allow);
    CHECK(d.code == DenyCode::none);
  }
  Decision d = call.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK(d.code == DenyCode::rate_limited);
  CHECK(d.status == 429);
  CHECK(d.retry_after_s == 1);  // one token per 0.5 s → ceil(0.5) = 1
  CHECK(std::string(to_string(d.code)) == "rate_limited");

  // 499 ms later still nothing; at 500 ms exactly one token.
  call.now = kNow + 499;
  CHECK(call.run(*snap, limiter).code == DenyCode::rate_limited);
  call.now = kNow + 500;
  CHECK(call.run(*snap, limiter).allow);
  CHECK(call.run(*snap, limiter).code == DenyCode::rate_limited);

  // After a long pause the bucket is full again, but never above burst.
  call.now = kNow + 3600 * 1000;
  int allowed = 0;
  for (int i = 0; i < 20; ++i) allowed += call.run(*snap, limiter).allow ? 1 : 0;
  CHECK(allowed == 5);
}

TEST_CASE("Retry-After is the ceiling of the wait for the next token") {
  auto snap = compile_ok(limited_config(R"({"rps": 0.1, "burst": 1})"));  // one per 10 s
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  CHECK(call.run(*snap, limiter).allow);
  Decision d = call.run(*snap, limiter);
  CHECK(d.code == DenyCode::rate_limited);
  CHECK(d.retry_after_s == 10);
  call.now = kNow + 2500;
  CHECK(call.run(*snap, limiter).retry_after_s == 8);  // 7.5 s → 8
  call.now = kNow + 9001;
  CHECK(call.run(*snap, limiter).retry_after_s == 1);
  call.now = kNow + 10000;
  CHECK(call.run(*snap, limiter).allow);
}

TEST_CASE("burst defaults to ceil(rps)") {
  auto snap = compile_ok(limited_config(R"({"rps": 2.5})"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += call.run(*snap, limiter).allow ? 1 : 0;
  CHECK(allowed == 3);
}

TEST_CASE("rebind keeps the bucket of a grant that is still there") {
  auto snap1 = compile_ok(limited_config(R"({"rps": 1, "burst": 3})"));
  RateLimiter limiter;
  limiter.rebind(*snap1);
  Call call;
  for (int i = 0; i < 3; ++i) REQUIRE(call.run(*snap1, limiter).allow);
  REQUIRE(call.run(*snap1, limiter).code == DenyCode::rate_limited);

  // A reload with the same grant (and another one): still empty.
  auto snap2 = compile_ok(config_json(
      "[" +
      grant(kGrantA, R"("peer": "partner-labs", "resources": ["tasks"], "status": "active",
                        "rate_limit": {"rps": 1, "burst": 3})") +
      "," +
      grant(kGrantB, R"("peer": "other-org", "resources": ["tasks"], "status": "active",
                        "rate_limit": {"rps": 1, "burst": 3})") +
      "]"));
  limiter.rebind(*snap2);
  CHECK(call.run(*snap2, limiter).code == DenyCode::rate_limited);
  // The new grant starts full.
  Call other;
  other.sans = {kOtherUri};
  for (int i = 0; i < 3; ++i) CHECK(other.run(*snap2, limiter).allow);
  CHECK(other.run(*snap2, limiter).code == DenyCode::rate_limited);

  // A request still evaluated against the old snapshot shares the bucket.
  CHECK(call.run(*snap1, limiter).code == DenyCode::rate_limited);

  // Removing the grant's limit and adding it back starts afresh.
  auto snap3 = compile_ok(config_json(
      "[" + grant(kGrantA, R"("peer": "partner-labs", "resources": ["tasks"], "status": "active")") +
      "]"));
  limiter.rebind(*snap3);
  CHECK(call.run(*snap3, limiter).allow);
  limiter.rebind(*snap1);
  CHECK(call.run(*snap1, limiter).allow);
}

TEST_CASE("a limiter never bound to the snapshot fails closed") {
  auto snap = compile_ok(limited_config(R"({"rps": 1, "burst": 3})"));
  RateLimiter limiter;  // no rebind
  Decision d = Call{}.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK(d.code == DenyCode::rate_limited);
  CHECK(d.retry_after_s == 1);
}

TEST_CASE("exact under concurrency: burst N across threads gives exactly N") {
  auto snap = compile_ok(limited_config(R"({"rps": 1, "burst": 1000})"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  std::atomic<int> allowed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      Call call;  // same instant for everyone: no refill
      for (int i = 0; i < 500; ++i) {
        Decision d = call.run(*snap, limiter);
        (d.allow ? allowed : refused).fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(allowed.load() == 1000);
  CHECK(refused.load() == 3000);
}

TEST_CASE("shadow mode counts the overrun but never blocks") {
  auto snap = compile_ok(limited_config(R"({"rps": 1, "burst": 2})", R"(, "enforce": false)"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  CHECK(call.run(*snap, limiter).code == DenyCode::none);
  CHECK(call.run(*snap, limiter).code == DenyCode::none);
  Decision d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK(d.shadow);
  CHECK(d.code == DenyCode::rate_limited);
  CHECK(d.retry_after_s == 1);
  // Shadowed overruns take no token (as when enforcing): one per second.
  call.now = kNow + 1000;
  CHECK(call.run(*snap, limiter).code == DenyCode::none);
  CHECK(call.run(*snap, limiter).code == DenyCode::rate_limited);
}

TEST_CASE("rebind while other threads evaluate: buckets stay exact across reloads") {
  auto snap1 = compile_ok(limited_config(R"({"rps": 1, "burst": 2000})"));
  auto snap2 = compile_ok(limited_config(R"({"rps": 1, "burst": 2000})", R"(, "methods": ["GET", "POST"])"));
  RateLimiter limiter;
  limiter.rebind(*snap1);
  std::atomic<bool> done{false};
  std::atomic<int> allowed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      Call call;
      for (int i = 0; i < 1500; ++i) {
        const Snapshot& s = (i + t) % 2 ? *snap1 : *snap2;
        if (call.run(s, limiter).allow) allowed.fetch_add(1);
      }
    });
  }
  std::thread reloader([&] {
    for (int i = 0; !done.load(); ++i) limiter.rebind(i % 2 ? *snap1 : *snap2);
  });
  for (auto& w : workers) w.join();
  done = true;
  reloader.join();
  // Same grant id in both snapshots: one bucket throughout, so exactly burst.
  CHECK(allowed.load() == 2000);
}
