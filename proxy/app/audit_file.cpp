#include "proxy/app/audit_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

ssize_t system_write(int fd, const void* buf, size_t n) { return ::write(fd, buf, n); }
int system_ftruncate(int fd, off_t length) { return ::ftruncate(fd, length); }

}  // namespace

const AuditFileIo& AuditFileIo::system() {
  static const AuditFileIo io{system_write, system_ftruncate};
  return io;
}

AuditFile::~AuditFile() {
  if (fd_ < 0) return;
  fsync(fd_);
  ::close(fd_);
}

bool AuditFile::open(const std::string& path, std::string* last_line, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = path + ": cannot open audit log: " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  regular_ = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  // Reading needs its own descriptor: this one is write-only.
  bool ends_with_newline = true;
  last_line->clear();
  if (int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); rfd >= 0) {
    *last_line = read_last_line(rfd, &ends_with_newline);
    ::close(rfd);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  cut_to_ = -1;
  if (!ends_with_newline) {
    std::string ignored;
    append("\n", &ignored);  // if even that fails, verify names the cut line
  }
  return true;
}

bool AuditFile::cut_back(std::string* error) {
  struct stat st {};
  // Only ever shorten: a file rotated away under us (copytruncate) is smaller.
  if (fstat(fd_, &st) == 0 && st.st_size <= cut_to_) {
    cut_to_ = -1;
    return true;
  }
  if (io_->ftruncate(fd_, cut_to_) != 0) {
    *error = std::string("cannot cut back a partial line: ") + std::strerror(errno);
    return false;
  }
  cut_to_ = -1;
  return true;
}

bool AuditFile::append(std::string_view line, std::string* error) {
  if (fd_ < 0) {
    *error = "audit log not open";
    return false;
  }
  if (cut_to_ >= 0 && !cut_back(error)) return false;
  off_t before = -1;
  if (regular_) {
    struct stat st {};
    if (fstat(fd_, &st) == 0) before = st.st_size;
  }
  ssize_t n;
  do {
    n = io_->write(fd_, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(line.size())) return true;
  if (n < 0) {
    *error = std::strerror(errno);
  } else {
    *error = "short write: " + std::to_string(n) + " of " + std::to_string(line.size()) + " bytes";
  }
  // Part of the line may be in the file (a short write, or an error after
  // some blocks): cut it off, now or before the next append.
  if (before >= 0) {
    cut_to_ = before;
    std::string cut_error;
    if (!cut_back(&cut_error)) *error += "; " + cut_error;
  }
  return false;
}

}  // namespace fedproxy::app
