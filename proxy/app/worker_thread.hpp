// Workers 1..N-1: a thread with its own event loop running a Worker.
//
// Snapshot publication is a latest-value cell plus a uv_async wakeup, never a
// queue: the Runtime stores the newest snapshot in the SnapshotCell and wakes
// every thread; a thread that wakes reads whatever is newest (several
// reloads in a row collapse into one apply). Stopping works the same way: a
// flag, then a wakeup.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/app/worker.hpp"

namespace fedproxy::app {

class SnapshotCell {
 public:
  void publish(std::shared_ptr<const Snapshot> snap) {
    std::lock_guard<std::mutex> lock(mu_);
    snap_ = std::move(snap);
    ++version_;
  }
  std::shared_ptr<const Snapshot> load(uint64_t* version) const {
    std::lock_guard<std::mutex> lock(mu_);
    *version = version_;
    return snap_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snap_;
  uint64_t version_ = 0;
};

class WorkerThread {
 public:
  WorkerThread(unsigned index, WorkerShared shared, const SnapshotCell& cell, ListenPlan plan);
  ~WorkerThread();  // joins (call request_stop first)
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Starts the thread and waits until its listeners are bound (or failed).
  bool start(std::string* error);
  // Any thread: a new snapshot is in the cell.
  void notify();
  // Any thread: stop accepting, drain, close after grace_ms; the thread ends
  // when its last connection is gone.
  void request_stop(uint32_t grace_ms);
  void join();

  // Thread-safe views for /metrics and /status; valid after the thread ended.
  const EventLog& events() const { return events_; }
  void set_log_requests(bool on) { events_.set_log_requests(on); }  // any thread
  size_t upstream_idle() const;
  uint64_t accepted() const;  // ingress connections this worker accepted

 private:
  void main();
  void on_wake();

  unsigned index_;
  WorkerShared shared_;
  const SnapshotCell& cell_;
  ListenPlan plan_;
  std::thread thread_;
  EventLog events_;
  mutable std::mutex live_mu_;  // guards live_ against its destruction
  Worker* live_ = nullptr;

  // Guards wake_ against the thread tearing it down while notify() runs.
  std::mutex wake_mu_;
  net::AsyncWakeup* wake_ = nullptr;
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint32_t> grace_ms_{0};

  // Only touched on the worker thread.
  uint64_t applied_version_ = 0;
  bool stopping_ = false;
};

}  // namespace fedproxy::app
