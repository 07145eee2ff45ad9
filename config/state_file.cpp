#include "config/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace fedproxy::config {

namespace {
constexpr size_t kMaxStateBytes = 64u << 20;

base::Error io_error(const std::string& what, const std::string& path) {
  return base::make_error(base::Errc::io, what + ": " + std::strerror(errno), path);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

base::Result<State> read_state_file(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    if (errno == ENOENT) return State{};
    return io_error("cannot read the state file", path);
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read the state file", path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxStateBytes) {
      return base::make_error(base::Errc::invalid, "the state file is larger than 64 MiB", path);
    }
  }
  auto state = state_from_json(text);
  if (!state) return base::make_error(base::Errc::invalid, "the state file is invalid: " + state.message(), path);
  return state;
}

base::Status write_state_file(const std::string& path, const State& state) {
  return write_file_atomically(path, to_json(state) + "\n");
}

base::Status write_file_atomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  Fd f;
  f.fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (f.fd < 0) return io_error("cannot create a temporary file next to the file", path);
  ::fchmod(f.fd, 0600);
  if (!write_all(f.fd, text) || ::fsync(f.fd) != 0) {
    base::Error e = io_error("cannot write the file", path);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(f.fd);
  f.fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    base::Error e = io_error("cannot replace the file", path);
    ::unlink(tmp.c_str());
    return e;
  }
  // The rename is durable only once the directory entry is.
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0 || ::fsync(d.fd) != 0) return io_error("cannot sync the file's directory", path);
  return base::ok_status();
}

}  // namespace fedproxy::config
