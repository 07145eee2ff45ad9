#include "config/etag.hpp"
#include "proxy/app/audit_sink.hpp"

#include <utility>

#include "policy/policy.hpp"
#include "proxy/app/log.hpp"
#include "proxy/base/outcome.hpp"

namespace fedproxy::app {

std::unique_ptr<AuditSink> AuditSink::open(const std::string& path, OnFailure on_failure, std::string* error,
                                           const AuditFileIo& io) {
  std::unique_ptr<AuditSink> sink(new AuditSink(path, on_failure, io));
  std::string head;
  if (!sink->open_file(error, &head)) return nullptr;
  return sink;
}

bool AuditSink::open_file(std::string* error, std::string* previous_head) {
  auto file = std::make_unique<AuditFile>(*io_);
  std::string last;
  if (!file->open(path_, &last, error)) return false;
  file_ = std::move(file);
  *previous_head = chain_.prev();
  if (last.empty()) {
    chain_ = policy::AuditChain();
  } else if (auto head = policy::chain_head_after(last)) {
    chain_ = policy::AuditChain(*head);
  } else {
    // Not an audit line: keep the chain going over it, so verify flags it.
    chain_ = policy::AuditChain(config::sha256_hex(last));
  }
  return true;
}

bool AuditSink::reopen(std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string previous_head;
  if (!open_file(error, &previous_head)) return false;
  // First line of the new file, before any worker's next record (and before
  // a pending gap event, which then follows it).
  const std::string ts = utc_timestamp_now();
  if (!write_locked(chain_.format_event(ts, "audit.reopened", {{"previous_chain_head", previous_head}}), ts)) {
    lose_locked(ts);
  } else if (lost_pending_ > 0) {
    write_gap_locked(ts);
  }
  return true;
}

void AuditSink::set_on_failure(OnFailure on_failure) {
  std::lock_guard<std::mutex> lock(mu_);
  on_failure_ = on_failure;
  update_refusing_locked();
}

std::string AuditSink::chain_head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chain_.prev();
}

AuditSink::Health AuditSink::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  Health h;
  h.failing = lost_pending_ > 0;
  h.on_failure = on_failure_;
  h.write_failures = write_failures_;
  h.lost_records = lost_records_;
  h.lost_pending = lost_pending_;
  h.failing_since = failing_since_;
  h.last_error = last_error_;
  return h;
}

void AuditSink::update_refusing_locked() {
  refusing_.store(lost_pending_ > 0 && on_failure_ == OnFailure::reject, std::memory_order_relaxed);
}

bool AuditSink::write_locked(policy::AuditChain::Line line, const std::string& ts) {
  std::string error;
  if (file_->append(line.text, &error)) {
    chain_.advance(std::move(line.hash));
    return true;
  }
  ++write_failures_;
  last_error_ = std::move(error);
  if (lost_pending_ == 0) {
    // Once per failure, not per line: the counters and /status say the rest.
    LogLine("error", "audit write failed")
        .str("path", path_)
        .str("error", last_error_)
        .str("on_failure", config::to_string(on_failure_))
        .str("since", ts);
  }
  return false;
}

bool AuditSink::write_gap_locked(const std::string& ts) {
  if (!write_locked(chain_.format_gap(ts, lost_pending_, failing_since_, last_error_), ts)) return false;
  LogLine("warn", "audit log writable again")
      .str("path", path_)
      .num("lost", static_cast<int64_t>(lost_pending_))
      .str("since", failing_since_);
  lost_pending_ = 0;
  failing_since_.clear();
  update_refusing_locked();
  return true;
}

template <typename Format>
void AuditSink::append_locked(Format&& format) {
  // Taken under the lock: the lines stay in time order across workers.
  const std::string ts = utc_timestamp_now();
  if ((lost_pending_ == 0 || write_gap_locked(ts)) && write_locked(format(ts), ts)) return;
  lose_locked(ts);
}

void AuditSink::lose_locked(const std::string& ts) {
  if (lost_pending_ == 0) failing_since_ = ts;
  ++lost_pending_;
  ++lost_records_;
  update_refusing_locked();
}

void AuditSink::retry() {
  std::lock_guard<std::mutex> lock(mu_);
  if (lost_pending_ > 0) write_gap_locked(utc_timestamp_now());
}

void AuditSink::request(const core::RequestRecord& r) {
  policy::AuditRequest a;
  a.request_id = r.request_id;
  a.peer = r.peer_slug;
  a.entity_uri = r.entity_uri;
  a.grant = r.grant;
  a.method = r.method;
  std::string_view target = r.target;
  std::string_view query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  a.path = std::string(target);
  a.resource = r.resource;
  a.decision = base::to_string(r.decision);
  a.reason = r.reason;
  a.outcome = std::string(base::to_string(r.outcome));
  a.status = r.status;
  a.bytes_in = r.bytes_in;
  a.bytes_out = r.bytes_out;
  a.duration_ms = r.duration_ms;
  // The record's target is the canonical one the policy decided on (SPEC §4),
  // so the hash covers the normalised path without normalising again.
  a.query_hash = policy::query_hash(a.method, a.path, query);
  if (r.peer && r.peer->present) a.cert_fingerprint = r.peer->der_sha256;
  std::lock_guard<std::mutex> lock(mu_);
  append_locked([&](const std::string& ts) {
    a.ts = ts;
    return chain_.format_request(a);
  });
}

void AuditSink::event(std::string_view name, const policy::AuditFields& fields) {
  std::lock_guard<std::mutex> lock(mu_);
  append_locked([&](const std::string& ts) { return chain_.format_event(ts, name, fields); });
}

}  // namespace fedproxy::app
