// The join attempt limiter: failures per address in a fixed window.
#include "config/attempt_limiter.hpp"

#include <doctest/doctest.h>

#include <string>

namespace cfg = fedproxy::config;

TEST_CASE("an address is refused after max failures until its window ends") {
  cfg::AttemptLimiter limiter(3, 60000);
  const int64_t t0 = 1000000;
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.retry_after_ms("10.0.0.1", t0 + i) == 0);
    limiter.record_failure("10.0.0.1", t0 + i);
  }
  CHECK(limiter.retry_after_ms("10.0.0.1", t0 + 10) == 60000 - 10);
  CHECK(limiter.retry_after_ms("10.0.0.2", t0 + 10) == 0);  // other addresses unaffected
  CHECK(limiter.retry_after_ms("10.0.0.1", t0 + 59999) == 1);
  CHECK(limiter.retry_after_ms("10.0.0.1", t0 + 60000) == 0);  // window over
}

TEST_CASE("failures in an old window do not count in the next") {
  cfg::AttemptLimiter limiter(2, 1000);
  limiter.record_failure("a", 0);
  limiter.record_failure("a", 1500);  // new window starts here
  CHECK(limiter.retry_after_ms("a", 1600) == 0);
  limiter.record_failure("a", 1700);
  CHECK(limiter.retry_after_ms("a", 1800) == 700);
}

TEST_CASE("the table stays bounded") {
  cfg::AttemptLimiter limiter(1, 1000);
  for (int i = 0; i < 10000; ++i) limiter.record_failure("addr-" + std::to_string(i), i / 100);
  // The newest address still counts.
  CHECK(limiter.retry_after_ms("addr-9999", 100) > 0);
}
