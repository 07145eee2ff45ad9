#include "proxy/app/audit_sink.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.hpp"
#include "proxy/app/log.hpp"

namespace fedproxy::app {

namespace {

// The file's last line (without its newline) and whether the file ends in
// a newline. Reads at most the last 64 KiB.
std::string read_last_line(int rfd, bool* ends_with_newline) {
  *ends_with_newline = true;
  struct stat st {};
  if (fstat(rfd, &st) != 0 || st.st_size == 0) return "";
  off_t size = st.st_size;
  off_t start = size > 65536 ? size - 65536 : 0;
  std::string tail(static_cast<size_t>(size - start), '\0');
  ssize_t n = pread(rfd, tail.data(), tail.size(), start);
  if (n <= 0) return "";
  tail.resize(static_cast<size_t>(n));
  *ends_with_newline = tail.back() == '\n';
  if (*ends_with_newline) tail.pop_back();
  size_t begin = tail.rfind('\n');
  return begin == std::string::npos ? tail : tail.substr(begin + 1);
}

}  // namespace

std::unique_ptr<AuditSink> AuditSink::open(const std::string& path, std::string* error) {
  std::unique_ptr<AuditSink> sink(new AuditSink(path));
  std::string head;
  if (!sink->open_file(error, &head)) return nullptr;
  return sink;
}

AuditSink::~AuditSink() {
  if (fd_ >= 0) {
    fsync(fd_);
    ::close(fd_);
  }
}

bool AuditSink::open_file(std::string* error, std::string* previous_head) {
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = path_ + ": cannot open audit log: " + std::strerror(errno);
    return false;
  }
  // Reading needs its own descriptor: this one is write-only.
  std::string last;
  bool ends_with_newline = true;
  if (int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC); rfd >= 0) {
    last = read_last_line(rfd, &ends_with_newline);
    ::close(rfd);
  }
  // A line cut short by a crash: end it, so it stays visible to
  // `fedproxy audit verify` instead of being glued to the next record.
  if (!ends_with_newline && ::write(fd, "\n", 1) != 1) ++write_errors_;
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  *previous_head = chain_.prev();
  if (last.empty()) {
    chain_ = policy::AuditChain();
  } else if (auto head = policy::chain_head_after(last)) {
    chain_ = policy::AuditChain(*head);
  } else {
    // Not an audit line: keep the chain going over it, so verify flags it.
    chain_ = policy::AuditChain(policy::sha256_hex(last));
  }
  return true;
}

bool AuditSink::reopen(std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string previous_head;
  if (!open_file(error, &previous_head)) return false;
  // First line of the new file, before any worker's next record.
  write_line(chain_.event_line(utc_timestamp_now(), "audit.reopened", {{"previous_chain_head", previous_head}}));
  return true;
}

std::string AuditSink::chain_head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chain_.prev();
}

uint64_t AuditSink::write_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return write_errors_;
}

void AuditSink::write_line(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      ++write_errors_;
      LogLine("error", "audit write failed").str("path", path_).str("error", std::strerror(errno));
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
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
  a.decision = r.decision;
  a.reason = r.reason;
  a.status = r.status;
  a.bytes_in = r.bytes_in;
  a.bytes_out = r.bytes_out;
  a.duration_ms = r.duration_ms;
  // The record's target is the canonical one the policy decided on (SPEC §4),
  // so the hash covers the normalised path without normalising again.
  a.query_hash = policy::query_hash(a.method, a.path, query);
  if (r.peer && r.peer->present) a.cert_fingerprint = r.peer->der_sha256;
  // Workers share the chain: taking the timestamp under the lock keeps the
  // lines in time order.
  std::lock_guard<std::mutex> lock(mu_);
  a.ts = utc_timestamp_now();
  write_line(chain_.request_line(a));
}

void AuditSink::event(std::string_view name, const policy::AuditFields& fields) {
  std::lock_guard<std::mutex> lock(mu_);
  write_line(chain_.event_line(utc_timestamp_now(), name, fields));
}

}  // namespace fedproxy::app
