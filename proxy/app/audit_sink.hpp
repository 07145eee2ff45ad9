// The audit log (SPEC §10): appends hash-chained JSON lines written by
// policy::AuditChain to an AuditFile (whole lines or nothing). SIGUSR1
// reopens the path for log rotation. Thread-safe: every worker loop appends
// to one chain.
//
// Write failures (disk full, I/O error): the chain only advances over lines
// that were written, so `audit verify` passes across the failure. While
// lines cannot be written the sink is "failing": every record it could not
// write is counted as lost, and each new record (and retry(), which the
// Runtime calls every second) tries again; the first line that can be
// written again is a "gap" event naming how many records were lost since
// when. With audit.on_failure "reject", refusing() is true while failing:
// the authorizers answer 503 audit_unavailable and /readyz is 503.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "policy/audit.hpp"
#include "config/config.hpp"
#include "proxy/app/audit_file.hpp"
#include "proxy/core/events.hpp"

namespace fedproxy::app {

class AuditSink {
 public:
  using OnFailure = config::AuditConfig::OnFailure;

  // Opens (creates) path for appending and continues the chain from its last
  // line. nullptr with *error on failure.
  static std::unique_ptr<AuditSink> open(const std::string& path, OnFailure on_failure, std::string* error,
                                         const AuditFileIo& io = AuditFileIo::system());
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  void request(const core::RequestRecord& record);
  void event(std::string_view name, const policy::AuditFields& fields);
  // While failing: try to write the gap event (and so leave the failing state).
  void retry();
  // Log rotation: close and open the path again. A new (empty) file starts a
  // new chain whose first line records the last hash of the previous file
  // (an "audit.reopened" event; a pending gap event follows it).
  bool reopen(std::string* error);
  // audit.on_failure applies at a reload.
  void set_on_failure(OnFailure on_failure);
  // True while failing with on_failure "reject". Read without locking by
  // every worker's authorizer (proxy/core/audit_gate.hpp).
  const std::atomic<bool>& refusing() const { return refusing_; }

  struct Health {
    bool failing = false;
    OnFailure on_failure = OnFailure::reject;
    uint64_t write_failures = 0;  // write attempts that failed (records, gap lines, retries)
    uint64_t lost_records = 0;    // records (request and event lines) never written
    uint64_t lost_pending = 0;    // of those, lost since the last line that was written
    std::string failing_since;    // ts of the first record lost in this failure, "" when ok
    std::string last_error;       // "" until a write failed
  };
  Health health() const;
  const std::string& path() const { return path_; }
  // Hash of the last line written: published outside the file (logs,
  // /status) because no later line vouches for the last one.
  std::string chain_head() const;

 private:
  AuditSink(std::string path, OnFailure on_failure, const AuditFileIo& io)
      : path_(std::move(path)), io_(&io), on_failure_(on_failure) {}
  bool open_file(std::string* error, std::string* previous_head);
  // The gap event first when records were lost, then the line format(ts)
  // builds; a line that cannot be written counts as lost.
  template <typename Format>
  void append_locked(Format&& format);
  bool write_locked(policy::AuditChain::Line line, const std::string& ts);
  bool write_gap_locked(const std::string& ts);
  void lose_locked(const std::string& ts);  // a record that could not be written
  void update_refusing_locked();

  mutable std::mutex mu_;  // guards everything below
  std::string path_;
  const AuditFileIo* io_;
  std::unique_ptr<AuditFile> file_;
  policy::AuditChain chain_;
  OnFailure on_failure_;
  uint64_t write_failures_ = 0;
  uint64_t lost_records_ = 0;
  uint64_t lost_pending_ = 0;  // > 0 exactly while failing
  std::string failing_since_;
  std::string last_error_;
  std::atomic<bool> refusing_{false};
};

}  // namespace fedproxy::app
