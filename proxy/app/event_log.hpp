// CoreEvents → JSON log lines (and, later, metrics and audit).
#pragma once

#include "policy/policy.hpp"

#include <atomic>
#include <cstdint>

#include "proxy/app/metrics.hpp"
#include "proxy/core/events.hpp"

namespace fedproxy::app {

class AuditSink;

class EventLog final : public core::CoreEvents {
 public:
  void on_handshake_failed(const std::string& peer_address, const std::string& reason) override;
  void on_request_done(const core::RequestRecord& record) override;
  void on_connection_event(const std::string& peer_address, const std::string& what,
                           const std::string& detail) override;

  uint64_t handshake_failures() const { return handshake_failures_.load(std::memory_order_relaxed); }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  Metrics& metrics() { return metrics_; }
  const Metrics& metrics() const { return metrics_; }
  void set_audit(AuditSink* audit) { audit_ = audit; }
  // Where a forwarded exchange's body bytes count against its grant's
  // bytes_per_day (SPEC §14); set before the workers start.
  void set_limiter(policy::RateLimiter* limiter) { limiter_ = limiter; }
  // config "log_requests" (set from the main thread on start and reload).
  void set_log_requests(bool on) { log_requests_.store(on, std::memory_order_relaxed); }

 private:
  AuditSink* audit_ = nullptr;
  policy::RateLimiter* limiter_ = nullptr;
  Metrics metrics_;
  // Written by one worker loop, read by the admin loop.
  std::atomic<uint64_t> handshake_failures_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<bool> log_requests_{true};
};

}  // namespace fedproxy::app
