#include "proxy/app/worker_thread.hpp"

#include <pthread.h>

#include <csignal>
#include <future>

#include "proxy/app/log.hpp"

namespace fedproxy::app {

WorkerThread::WorkerThread(unsigned index, WorkerShared shared, const SnapshotCell& cell, ListenPlan plan)
    : index_(index), shared_(std::move(shared)), cell_(cell), plan_(std::move(plan)) {
  events_.set_audit(shared_.audit);
  events_.set_limiter(shared_.limiter.get());
}

WorkerThread::~WorkerThread() { join(); }

bool WorkerThread::start(std::string* error) {
  std::promise<std::string> bound;
  std::future<std::string> result = bound.get_future();
  // Signals belong to the main loop: the thread starts with them blocked so
  // that SIGTERM/SIGHUP are never delivered to a worker thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  thread_ = std::thread([this, p = std::move(bound)]() mutable {
    std::string why;
    bool ok = false;
    {
      net::Loop loop;
      {
        Worker worker(loop, index_, shared_, events_);
        auto snap = cell_.load(&applied_version_);
        ok = worker.start(snap, plan_, &why);
        if (ok) {
          net::AsyncWakeup wake(loop, [this] { on_wake(); });
          {
            std::lock_guard<std::mutex> lock(wake_mu_);
            wake_ = &wake;
          }
          {
            std::lock_guard<std::mutex> lock(live_mu_);
            live_ = &worker;
          }
          p.set_value("");
          // A stop requested before the wakeup existed would be lost.
          if (stop_requested_.load()) on_wake();
          begin_log_batching();
          loop.add_iteration_hook(flush_log_batch);
          loop.run();
          end_log_batching();
          std::lock_guard<std::mutex> lock(wake_mu_);
          wake_ = nullptr;
        }
        std::lock_guard<std::mutex> lock(live_mu_);
        live_ = nullptr;
      }
      // ~Worker and ~AsyncWakeup closed handles; ~Loop runs them to the end.
    }
    if (!ok) p.set_value(why.empty() ? "worker " + std::to_string(index_) + " failed to start" : why);
  });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  std::string why = result.get();
  if (!why.empty()) {
    *error = why;
    join();
    return false;
  }
  return true;
}

void WorkerThread::notify() {
  std::lock_guard<std::mutex> lock(wake_mu_);
  if (wake_) wake_->wake();
}

void WorkerThread::request_stop(uint32_t grace_ms) {
  grace_ms_.store(grace_ms);
  stop_requested_.store(true);
  notify();
}

void WorkerThread::join() {
  if (thread_.joinable()) thread_.join();
}

size_t WorkerThread::upstream_idle() const {
  std::lock_guard<std::mutex> lock(live_mu_);
  return live_ ? live_->upstream_idle() : 0;
}

uint64_t WorkerThread::accepted() const {
  std::lock_guard<std::mutex> lock(live_mu_);
  return live_ ? live_->accepted() : 0;
}

void WorkerThread::on_wake() {
  if (stopping_) return;
  if (stop_requested_.load()) {
    stopping_ = true;
    live_->begin_shutdown(grace_ms_.load());
    // Keep the wakeup handle open (a late notify() must find it) but let the
    // loop end once the last connection is gone.
    std::lock_guard<std::mutex> lock(wake_mu_);
    if (wake_) wake_->unref();
    return;
  }
  uint64_t version = 0;
  std::shared_ptr<const Snapshot> snap = cell_.load(&version);
  if (version == applied_version_ || !snap) return;
  applied_version_ = version;
  live_->apply(snap);  // problems were logged once by worker 0
}

}  // namespace fedproxy::app
