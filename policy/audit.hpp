// Audit records (SPEC §10): one JSON line per federated request and per
// event, each carrying the SHA-256 of the previous line ("prev"), so an
// edited, dropped or reordered line breaks the chain. Pure: formatting,
// hashing and verification; the file itself is written by proxy/app.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fedproxy::policy {

struct AuditRequest {
  std::string ts;  // RFC 3339 UTC with ms
  std::string request_id;
  std::string peer;        // slug or ""
  std::string entity_uri;
  std::string grant;       // grant id or ""
  std::string method;
  std::string path;        // as received (target without query)
  std::string resource;
  std::string decision;    // allow | deny | shadow_deny | error
  std::string reason;      // error code or ""
  std::string outcome;     // how the exchange ended: completed | denied | client_aborted | ...
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double duration_ms = 0;
  std::string query_hash;  // sha256 hex of method + normalised path + query
  std::string cert_fingerprint;
};

using AuditFields = std::vector<std::pair<std::string, std::string>>;

class AuditChain {
 public:
  // The hash the first line of a new file points back to.
  static const std::string& genesis();
  explicit AuditChain(std::string prev = genesis()) : prev_(std::move(prev)) {}

  // A complete line (ending in "\n") chained to prev(), and the hash the
  // chain moves to once that line is in the file. A writer formats, writes,
  // and calls advance() only when the whole line was written, so the chain
  // never runs ahead of the file.
  struct Line {
    std::string text;
    std::string hash;
  };
  Line format_request(const AuditRequest& r) const;
  // Event line: {"ts","type":"event","event":<name>, fields..., "prev"}.
  Line format_event(std::string_view ts, std::string_view event, const AuditFields& fields) const;
  // {"ts","type":"event","event":"gap","lost":N,"since":<ts of the first
  // loss>,"error":<why>,"prev"}: records that could not be written.
  Line format_gap(std::string_view ts, uint64_t lost, std::string_view since, std::string_view error) const;
  void advance(std::string hash) { prev_ = std::move(hash); }

  // Format and advance at once (for writers that cannot fail, and tests).
  std::string request_line(const AuditRequest& r);
  std::string event_line(std::string_view ts, std::string_view event, const AuditFields& fields);
  const std::string& prev() const { return prev_; }

 private:
  Line seal(std::string body) const;  // adds "prev", hashes
  std::string prev_;
};


// The chain head to continue from, given an existing file's last line
// (without newline); nullopt when the line is not a valid audit line.
std::optional<std::string> chain_head_after(std::string_view last_line);

// SHA-256 of method + "\n" + normalised path + "\n" + query.
std::string query_hash(std::string_view method, std::string_view normalized_path, std::string_view query);

struct AuditVerifyResult {
  bool ok = false;
  uint64_t lines = 0;        // lines checked
  uint64_t bad_line = 0;     // 1-based, 0 when ok
  std::string error;         // "line 7: prev does not match the hash of line 6"
};

// Walk a whole file: every line parses, carries the right "prev".
AuditVerifyResult verify_audit_log(std::istream& in);

}  // namespace fedproxy::policy
