#include "certwatch/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace fedproxy::certwatch {

namespace {
constexpr size_t kMaxFileSize = 16u << 20;  // certificate material is tiny
}

bool read_file(const std::string& path, std::string& out, mode_t* mode, std::string& err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = std::string("cannot read: ") + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    err = std::string("cannot read: ") + std::strerror(errno);
    ::close(fd);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    err = std::string("cannot read: ") + std::strerror(EISDIR);
    ::close(fd);
    return false;
  }
  if (mode != nullptr) *mode = st.st_mode;
  out.clear();
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = std::string("cannot read: ") + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileSize) {
      err = "file is too large (over 16 MiB)";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  if (out.empty()) {
    err = "file is empty";
    return false;
  }
  return true;
}

std::string world_readable_error(mode_t mode, std::string_view what) {
  if (!(mode & S_IROTH)) return "";
  char m[8];
  std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(mode & 07777));
  return std::string(what) + " file is world-readable (mode " + m +
         "); run chmod 600 on it, or set FEDPROXY_ALLOW_INSECURE_KEY_PERMS=1";
}

}  // namespace fedproxy::certwatch
