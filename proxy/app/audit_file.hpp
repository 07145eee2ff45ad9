// The audit log file at the byte level (SPEC §10: "never a partial line"):
// one whole line is appended or nothing is. Each line goes out in one
// write(2) of the full buffer on an O_APPEND descriptor, so nothing waits in
// a user-space buffer; a write that fails or comes back short (disk full, I/O
// error) is cut back with ftruncate(2) to the size the file had before it,
// so the file always ends with a complete line. Not thread-safe: AuditSink
// serialises its calls.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace fedproxy::app {

// The system calls that can fail while appending, replaceable by tests.
struct AuditFileIo {
  ssize_t (*write)(int fd, const void* buf, size_t n);
  int (*ftruncate)(int fd, off_t length);
  static const AuditFileIo& system();
};

class AuditFile {
 public:
  explicit AuditFile(const AuditFileIo& io = AuditFileIo::system()) : io_(&io) {}
  ~AuditFile();  // fsync and close
  AuditFile(const AuditFile&) = delete;
  AuditFile& operator=(const AuditFile&) = delete;

  // Opens (creates) path for appending. *last_line: the file's last line
  // without its newline ("" for an empty file). A last line cut short by a
  // crash is ended with a newline, so it stays visible to `audit verify`
  // instead of being glued to the next record.
  bool open(const std::string& path, std::string* last_line, std::string* error);
  // The whole line (ending in "\n") or nothing. false with *error ("No space
  // left on device", "short write: 512 of 700 bytes") when nothing of it
  // stays in the file.
  bool append(std::string_view line, std::string* error);
  bool is_open() const { return fd_ >= 0; }

 private:
  bool cut_back(std::string* error);  // a pending ftruncate to cut_to_

  const AuditFileIo* io_;
  int fd_ = -1;
  bool regular_ = false;  // truncating only means something for a regular file
  off_t cut_to_ = -1;     // size to cut back to before the next append (-1: none)
};

}  // namespace fedproxy::app
