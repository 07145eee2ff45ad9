// net::Timer: lazy one-shot re-arming must keep the exact semantics of
// uv_timer_start/stop (fire no earlier than the latest deadline, never after
// stop, and a stopped timer must not keep the loop running).
#include <doctest/doctest.h>

#include <chrono>
#include <memory>

#include "proxy/net/loop.hpp"

using fedproxy::net::Loop;
using fedproxy::net::Timer;

namespace {
uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
// A timer that records how often and at which loop time it fired.
struct Recorded {
  Loop loop;
  int fired = 0;
  uint64_t fired_at = 0;
  Timer timer{loop, [this] {
                ++fired;
                fired_at = loop.now_ms();
              }};
};
}  // namespace

TEST_CASE("timer: a later restart moves the deadline out; it fires once, not before it") {
  Recorded r;
  uint64_t start = r.loop.now_ms();
  r.timer.start(30);
  // Re-arm to 80 ms from the same loop time: the uv timer still runs for 30
  // ms and must re-arm itself for the rest instead of calling back.
  r.timer.start(80);
  r.loop.run();
  CHECK(r.fired == 1);
  CHECK(r.fired_at >= start + 80);
}

TEST_CASE("timer: an earlier restart fires at the earlier deadline") {
  Recorded r;
  uint64_t start = r.loop.now_ms();
  uint64_t wall = steady_ms();
  r.timer.start(60000);
  r.timer.start(20);
  r.loop.run();
  CHECK(r.fired == 1);
  CHECK(r.fired_at >= start + 20);
  CHECK(steady_ms() - wall < 30000);  // not the first, far deadline
}

TEST_CASE("timer: stop disarms and does not keep the loop alive") {
  Recorded r;
  uint64_t wall = steady_ms();
  r.timer.start(60000);
  r.timer.stop();
  r.loop.run();  // returns: the stale uv timer no longer counts
  CHECK(r.fired == 0);
  CHECK(steady_ms() - wall < 30000);
}

TEST_CASE("timer: stop then start again fires at the new deadline only") {
  Recorded r;
  uint64_t start = r.loop.now_ms();
  r.timer.start(20);
  r.timer.stop();
  r.timer.start(50);
  r.loop.run();
  CHECK(r.fired == 1);
  CHECK(r.fired_at >= start + 50);
}

TEST_CASE("timer: restarted from its own callback") {
  Loop loop;
  int fired = 0;
  Timer* self = nullptr;
  Timer chain(loop, [&] {
    if (++fired < 3) self->start(5);
  });
  self = &chain;
  chain.start(5);
  loop.run();
  CHECK(fired == 3);
  CHECK_FALSE(chain.armed());
}

TEST_CASE("timer: the owner may destroy it from its callback or while a stale uv timer runs") {
  Loop loop;
  int fired = 0;
  std::unique_ptr<Timer> t;
  t = std::make_unique<Timer>(loop, [&] {
    ++fired;
    t.reset();  // the handle is closed and freed by its close callback
  });
  t->start(5);
  auto stale = std::make_unique<Timer>(loop, [&] { ++fired; });
  stale->start(10);
  stale->start(40);  // lazily re-armed: the uv timer still runs for 10 ms
  stale.reset();
  loop.run();
  CHECK(fired == 1);
  CHECK(t == nullptr);
}

TEST_CASE("timer: repeating timers keep their interval; stop ends them") {
  Loop loop;
  int fired = 0;
  Timer* self = nullptr;
  Timer t(loop, [&] {
    if (++fired == 4) self->stop();
  });
  self = &t;
  t.start(1, 5);
  loop.run();
  CHECK(fired == 4);
}

TEST_CASE("timer: unref'd timers never keep the loop alive, even re-armed") {
  Recorded r;
  r.timer.unref();
  uint64_t wall = steady_ms();
  r.timer.start(60000);
  r.timer.stop();
  r.timer.start(60000);
  r.loop.run();
  CHECK(r.fired == 0);
  CHECK(steady_ms() - wall < 30000);
}
