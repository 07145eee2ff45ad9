#include "proxy/net/loop.hpp"

#include <chrono>

#include <algorithm>
#include <cassert>

#include <uv.h>

#include "proxy/net/resolver.hpp"

namespace fedproxy::net {

Loop::Loop()
    : loop_(new uv_loop_t),
      idle_(new uv_idle_t),
      check_(new uv_check_t),
      prepare_(new uv_prepare_t),
      read_buffer_(new char[kReadBufferSize]) {
  int rc = uv_loop_init(loop_);
  assert(rc == 0);
  (void)rc;
  uv_idle_init(loop_, idle_);
  idle_->data = this;
  // Coalesced writes go out right after the I/O callbacks (check) and before
  // the loop blocks again (prepare, for writes made by timers). Neither
  // handle keeps the loop alive.
  uv_check_init(loop_, check_);
  check_->data = this;
  uv_check_start(check_, [](uv_check_t* h) { static_cast<Loop*>(h->data)->flush_writes(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(check_));
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
  uv_prepare_start(prepare_, [](uv_prepare_t* h) { static_cast<Loop*>(h->data)->flush_writes(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
}

Loop::~Loop() { close_now(); }

int Loop::close_now() {
  if (closed_) return close_result_;
  closed_ = true;
  // No answers from here on; lookups still running finish during the run
  // below and free themselves.
  if (resolver_) resolver_->close();
  flush_writes();
  uv_close(reinterpret_cast<uv_handle_t*>(idle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(check_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(prepare_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  // Run until nothing is left: handles still closing (a graceful close that
  // lingers) may defer deletes, and destructors may close more handles.
  do {
    flush_deletes();
    uv_run(loop_, UV_RUN_DEFAULT);
  } while (!to_delete_.empty());
  close_result_ = uv_loop_close(loop_);
  if (close_result_ == 0) delete loop_;  // else leak on purpose: handles still reference it
  return close_result_;
}

Resolver& Loop::resolver() {
  if (!resolver_) resolver_ = std::make_unique<Resolver>(*this);
  return *resolver_;
}

uint64_t Loop::now_ms() const { return uv_now(loop_); }

int64_t Loop::unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t Loop::hrtime_ns() { return uv_hrtime(); }

const char* libuv_version() { return uv_version_string(); }

void Loop::run() { uv_run(loop_, UV_RUN_DEFAULT); flush_deletes(); }

bool Loop::run_once(bool block) {
  int alive = uv_run(loop_, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  flush_deletes();
  return alive != 0;
}

void Loop::defer_delete(Deletable* obj) {
  if (to_delete_.empty() && !closed_) uv_idle_start(idle_, &Loop::on_idle);
  to_delete_.push_back(obj);
}

void Loop::cancel_flush(Flushable* f) {
  to_flush_.erase(std::remove(to_flush_.begin(), to_flush_.end(), f), to_flush_.end());
}

void Loop::flush_writes() {
  // One at a time from the live list: a flush may fail a connection whose
  // handler closes (and cancels) another scheduled one, or writes elsewhere.
  while (!to_flush_.empty()) {
    Flushable* f = to_flush_.front();
    to_flush_.pop_front();
    f->flush_scheduled();
  }
  for (auto& hook : hooks_) hook();
}

void Loop::on_idle(uv_idle_t* idle) {
  auto* self = static_cast<Loop*>(idle->data);
  self->flush_deletes();
}

void Loop::flush_deletes() {
  // Destructors may defer further deletes: loop until empty.
  while (!to_delete_.empty()) {
    std::vector<Deletable*> batch;
    batch.swap(to_delete_);
    for (Deletable* obj : batch) delete obj;
  }
  if (!closed_) uv_idle_stop(idle_);
}

Timer::Timer(Loop& loop, std::function<void()> on_fire)
    : handle_(new uv_timer_t), on_fire_(std::move(on_fire)) {
  uv_timer_init(loop.raw(), handle_);
  handle_->data = this;
}

Timer::~Timer() {
  handle_->data = nullptr;  // disarm: a pending callback must not reach us
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms) {
  if (repeat_ms) {
    deadline_ = 0;
    repeating_ = true;
    handle_due_ = 0;
    keep_loop_alive(true);
    uv_timer_start(handle_, &Timer::on_timer, timeout_ms, repeat_ms);
    return;
  }
  if (repeating_) {
    repeating_ = false;
    uv_timer_stop(handle_);
  }
  uint64_t now = uv_now(handle_->loop);
  deadline_ = now + timeout_ms;
  if (deadline_ == 0) deadline_ = 1;  // 0 means disarmed
  keep_loop_alive(true);
  if (handle_due_ != 0 && handle_due_ <= deadline_) return;  // fires first, then re-arms
  uv_timer_start(handle_, &Timer::on_timer, timeout_ms, 0);
  handle_due_ = now + timeout_ms;
}

void Timer::stop() {
  if (repeating_) {
    repeating_ = false;
    uv_timer_stop(handle_);
    handle_due_ = 0;
    return;
  }
  deadline_ = 0;  // a running uv timer fires once more and finds nothing to do
  keep_loop_alive(false);
}

void Timer::unref() {
  unref_ = true;
  uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
}

void Timer::keep_loop_alive(bool yes) {
  if (unref_) return;
  if (yes) {
    uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
  }
}

void Timer::on_timer(uv_timer_t* t) {
  auto* self = static_cast<Timer*>(t->data);
  if (!self) return;
  if (self->repeating_) {
    if (self->on_fire_) self->on_fire_();
    return;
  }
  self->handle_due_ = 0;  // a one-shot uv timer is stopped once it fired
  if (self->deadline_ == 0) return;
  uint64_t now = uv_now(t->loop);
  if (now < self->deadline_) {
    uv_timer_start(t, &Timer::on_timer, self->deadline_ - now, 0);
    self->handle_due_ = self->deadline_;
    return;
  }
  self->deadline_ = 0;
  if (self->on_fire_) self->on_fire_();
}

SignalWatcher::SignalWatcher(Loop& loop, int signum, std::function<void()> on_signal)
    : handle_(new uv_signal_t), on_signal_(std::move(on_signal)) {
  uv_signal_init(loop.raw(), handle_);
  handle_->data = this;
  uv_signal_start(handle_, &SignalWatcher::on_signal, signum);
  // Signal watchers alone do not keep the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
}

SignalWatcher::~SignalWatcher() {
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_signal_t*>(h); });
}

void SignalWatcher::on_signal(uv_signal_t* s, int) {
  auto* self = static_cast<SignalWatcher*>(s->data);
  if (self && self->on_signal_) self->on_signal_();
}

AsyncWakeup::AsyncWakeup(Loop& loop, std::function<void()> on_wake)
    : handle_(new uv_async_t), on_wake_(std::move(on_wake)) {
  uv_async_init(loop.raw(), handle_, &AsyncWakeup::on_async);
  handle_->data = this;
}

AsyncWakeup::~AsyncWakeup() {
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void AsyncWakeup::wake() { uv_async_send(handle_); }

void AsyncWakeup::unref() { uv_unref(reinterpret_cast<uv_handle_t*>(handle_)); }

void AsyncWakeup::on_async(uv_async_t* a) {
  if (auto* self = static_cast<AsyncWakeup*>(a->data)) self->on_wake_();
}

}  // namespace fedproxy::net
