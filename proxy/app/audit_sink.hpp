// The audit log file (SPEC §10): appends hash-chained JSON lines written by
// policy::AuditChain. Each line is one write(2) to an O_APPEND descriptor, so
// nothing sits in a user-space buffer when SIGTERM comes. SIGUSR1 reopens the
// path for log rotation. Thread-safe: every worker loop appends to one chain.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "policy/audit.hpp"
#include "proxy/core/events.hpp"

namespace fedproxy::app {

class AuditSink {
 public:
  // Opens (creates) path for appending and continues the chain from its last
  // line. nullptr with *error on failure.
  static std::unique_ptr<AuditSink> open(const std::string& path, std::string* error);
  ~AuditSink();
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  void request(const core::RequestRecord& record);
  void event(std::string_view name, const policy::AuditFields& fields);
  // Log rotation: close and open the path again. A new (empty) file starts a
  // new chain whose first line records the last hash of the previous file.
  bool reopen(std::string* error);
  const std::string& path() const { return path_; }
  // Hash of the last line written: published outside the file (logs,
  // /status) because no later line vouches for the last one.
  std::string chain_head() const;
  uint64_t write_errors() const;

 private:
  AuditSink(std::string path) : path_(std::move(path)) {}
  bool open_file(std::string* error, std::string* previous_head);
  void write_line(const std::string& line);

  mutable std::mutex mu_;  // guards everything below
  std::string path_;
  int fd_ = -1;
  policy::AuditChain chain_;
  uint64_t write_errors_ = 0;
};

}  // namespace fedproxy::app
