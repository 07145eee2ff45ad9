// The event loop, timers and deferred deletion. proxy/net is the only place
// that includes <uv.h>; everything above it uses these wrappers.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

typedef struct uv_loop_s uv_loop_t;
typedef struct uv_idle_s uv_idle_t;
typedef struct uv_timer_s uv_timer_t;
typedef struct uv_signal_s uv_signal_t;
typedef struct uv_async_s uv_async_t;
typedef struct uv_check_s uv_check_t;
typedef struct uv_prepare_s uv_prepare_t;

namespace fedproxy::net {

class Resolver;

// Objects whose destruction must wait for a loop boundary (never in the middle
// of one of their own callbacks) derive from this and call Loop::defer_delete.
class Deletable {
 public:
  virtual ~Deletable() = default;
};

// Something that gathers output during a loop iteration and writes it out
// once at the end of it (write coalescing: one syscall, one TLS record for a
// response head and body produced by separate callbacks).
class Flushable {
 public:
  virtual ~Flushable() = default;
  // Called by the loop, which has already taken it off its list.
  virtual void flush_scheduled() = 0;
};

class Loop {
 public:
  Loop();
  ~Loop();  // runs the loop until every handle is closed, then uv_loop_close
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* raw() { return loop_; }
  uint64_t now_ms() const;  // loop time, updated once per iteration
  // Monotonic high-resolution clock (uv_hrtime), read now, not cached per
  // iteration: for durations (request latency) that must not round to 0.
  static uint64_t hrtime_ns();
  // Wall-clock time, Unix milliseconds (days, expiry dates; never for timeouts).
  static int64_t unix_ms();
  void run();
  // One iteration, blocking for I/O when block is true. False when nothing is left to run.
  bool run_once(bool block = true);
  // Delete obj at the next loop boundary (after the current callbacks).
  void defer_delete(Deletable* obj);
  // Call f->flush_scheduled() once the callbacks of this iteration are done (right
  // after the I/O callbacks, or before blocking for I/O). f must call
  // cancel_flush before it is destroyed.
  void schedule_flush(Flushable* f) { to_flush_.push_back(f); }
  void cancel_flush(Flushable* f);
  // Run every iteration at the same points (e.g. flushing buffered logs).
  void add_iteration_hook(std::function<void()> hook) { hooks_.push_back(std::move(hook)); }
  // Scratch read buffer shared by all streams of this loop: data is consumed
  // synchronously in the read callback, so one buffer per loop is enough and
  // idle connections hold no read buffer.
  char* read_buffer() { return read_buffer_.get(); }
  static constexpr size_t kReadBufferSize = 64 * 1024;
  // True when uv_loop_close succeeded in the destructor path (for tests).
  int close_result() const { return close_result_; }
  // This loop's host-name resolver and its cache (created on first use).
  Resolver& resolver();
  int close_now();  // close the loop now; returns uv_loop_close's result

 private:
  static void on_idle(uv_idle_t* idle);
  void flush_deletes();
  void flush_writes();
  uv_loop_t* loop_;
  uv_idle_t* idle_;
  uv_check_t* check_;
  uv_prepare_t* prepare_;
  std::vector<Deletable*> to_delete_;
  std::deque<Flushable*> to_flush_;
  std::vector<std::function<void()>> hooks_;
  std::unique_ptr<char[]> read_buffer_;
  std::unique_ptr<Resolver> resolver_;
  bool closed_ = false;
  int close_result_ = 0;
};

// The libuv this process runs with ("1.48.0"), for `fedproxy version` and
// fedproxy_build_info.
const char* libuv_version();

// A one-shot/repeating timer owned by a C++ object. The uv handle lives on
// the heap and is freed by its close callback, so the owner may be destroyed
// at any time: the callback is disarmed first.
//
// One-shot timers are lazy: sessions re-arm their idle/response deadlines
// several times per request, and every uv_timer_start/stop is a heap removal
// and insertion. start() only records the new deadline when the running uv
// timer is due no later (it re-arms itself for the rest when it fires), and
// stop() only disarms it and lets it stop keeping the loop alive.
class Timer {
 public:
  Timer(Loop& loop, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start(uint64_t timeout_ms, uint64_t repeat_ms = 0);
  void stop();
  // Do not keep the loop alive for this timer alone.
  void unref();
  bool armed() const { return deadline_ != 0 || repeating_; }

 private:
  static void on_timer(uv_timer_t* t);
  void keep_loop_alive(bool yes);
  uv_timer_t* handle_;
  std::function<void()> on_fire_;
  uint64_t deadline_ = 0;    // loop time the owner wants the callback (0: disarmed)
  uint64_t handle_due_ = 0;  // loop time the uv timer will fire (0: not running)
  bool repeating_ = false;
  bool unref_ = false;       // unref() asked: never keep the loop alive
};

// A signal watcher with the same ownership rule as Timer.
class SignalWatcher {
 public:
  SignalWatcher(Loop& loop, int signum, std::function<void()> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  static void on_signal(uv_signal_t* s, int signum);
  uv_signal_t* handle_;
  std::function<void()> on_signal_;
};

// Wakes a loop from another thread (uv_async): wakeups sent before the
// callback runs are coalesced into one call, so the sender publishes state
// somewhere (a latest-value cell) and the callback reads the newest. Same
// ownership rule as Timer; wake() may be called from any thread while the
// object is alive (the owner guarantees that, e.g. with a mutex).
class AsyncWakeup {
 public:
  AsyncWakeup(Loop& loop, std::function<void()> on_wake);
  ~AsyncWakeup();
  AsyncWakeup(const AsyncWakeup&) = delete;
  AsyncWakeup& operator=(const AsyncWakeup&) = delete;
  void wake();
  void unref();  // do not keep the loop alive for this handle alone

 private:
  static void on_async(uv_async_t* a);
  uv_async_t* handle_;
  std::function<void()> on_wake_;
};

}  // namespace fedproxy::net
