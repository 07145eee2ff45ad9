#include "proxy/app/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "proxy/app/log.hpp"

namespace fedproxy::app {

namespace {
// STATUS= is one line: a newline in it would start a new assignment.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}
}  // namespace

SdNotifier::SdNotifier() {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env || !*env) return;
  std::string path = env;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // '@' names an abstract socket (a leading NUL byte); it is not NUL-terminated,
  // so the address length must be exact.
  if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof(addr.sun_path)) {
    LogLine("warn", "NOTIFY_SOCKET ignored: not an absolute path or @abstract name").str("notify_socket", path);
    return;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  size_t len = offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1);
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    LogLine("warn", "NOTIFY_SOCKET: cannot create a socket").str("error", std::strerror(errno));
    return;
  }
  address_.assign(reinterpret_cast<const char*>(&addr), len);
  enabled_ = true;
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool SdNotifier::send(const std::string& message) {
  if (!enabled_) return false;
  ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(address_.data()), static_cast<socklen_t>(address_.size()));
  if (n >= 0) {
    LogLine("debug", "sd_notify").str("message", message);
    return true;
  }
  // EAGAIN: systemd is not reading right now; dropping beats blocking the loop.
  if (errno != EAGAIN && errno != EWOULDBLOCK && !warned_) {
    warned_ = true;  // once: a gone manager would otherwise fill the log
    LogLine("warn", "sd_notify failed").str("error", std::strerror(errno));
  }
  return false;
}

void SdNotifier::ready(std::string_view status) { send("READY=1\nSTATUS=" + one_line(status) + "\n"); }

void SdNotifier::reloading(std::string_view status) {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + one_line(status) + "\n");
}

void SdNotifier::stopping(std::string_view status) { send("STOPPING=1\nSTATUS=" + one_line(status) + "\n"); }

void SdNotifier::status(std::string_view status) { send("STATUS=" + one_line(status) + "\n"); }

}  // namespace fedproxy::app
