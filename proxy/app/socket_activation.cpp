#include "proxy/app/socket_activation.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "proxy/net/address.hpp"

namespace fedproxy::app {

namespace {
constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

bool parse_uint(const char* s, unsigned long* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtoul(s, &end, 10);
  return errno == 0 && end && *end == '\0';
}

std::vector<std::string> split_names(const char* s) {
  std::vector<std::string> out;
  if (!s) return out;
  std::string all = s;
  size_t start = 0;
  for (;;) {
    size_t colon = all.find(':', start);
    out.push_back(all.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (ss.ss_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    return "unix:" + std::string(un->sun_path);
  }
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    return net::format_sockaddr(reinterpret_cast<const sockaddr*>(&ss));
  }
  return "?";
}

// The socket's local address is the endpoint's (same family, address, port;
// or the same unix path).
bool same_address(int fd, const config::Endpoint& endpoint) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  if (endpoint.kind == config::Endpoint::Kind::unix_socket) {
    if (ss.ss_family != AF_UNIX) return false;
    return std::string(reinterpret_cast<const sockaddr_un*>(&ss)->sun_path) == endpoint.path;
  }
  sockaddr_storage want{};
  if (!net::to_sockaddr(endpoint, &want, nullptr) || want.ss_family != ss.ss_family) return false;
  // Port 0 in the config means "any": such a listener is matched by name only.
  if (endpoint.port == 0) return false;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    auto* b = reinterpret_cast<const sockaddr_in*>(&want);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  auto* b = reinterpret_cast<const sockaddr_in6*>(&want);
  return a->sin6_port == b->sin6_port && std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(in6_addr)) == 0;
}

// A listening stream socket of the endpoint's kind, or why not.
bool usable(int fd, const config::Endpoint& endpoint, std::string* why) {
  int type = 0, listening = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    *why = "not a stream socket";
    return false;
  }
  len = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    *why = "not a listening socket (ListenStream= with Accept=no)";
    return false;
  }
  sockaddr_storage ss{};
  len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const bool want_unix = endpoint.kind == config::Endpoint::Kind::unix_socket;
  if (want_unix != (ss.ss_family == AF_UNIX)) {
    *why = want_unix ? "a TCP socket for a unix: address" : "a unix socket for a TCP address";
    return false;
  }
  return true;
}
}  // namespace

InheritedSockets InheritedSockets::from_environment() {
  InheritedSockets out;
  unsigned long pid = 0, count = 0;
  const bool ours = parse_uint(std::getenv("LISTEN_PID"), &pid) && pid == static_cast<unsigned long>(::getpid()) &&
                    parse_uint(std::getenv("LISTEN_FDS"), &count);
  std::vector<std::string> names = split_names(std::getenv("LISTEN_FDNAMES"));
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!ours) return out;
  for (unsigned long i = 0; i < count; ++i) {
    int fd = kFirstFd + static_cast<int>(i);
    // Ours alone: not inherited by anything we might exec.
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) continue;
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    out.sockets_.push_back({fd, i < names.size() ? names[i] : std::string()});
  }
  return out;
}

InheritedSockets::InheritedSockets(InheritedSockets&& other) noexcept : sockets_(std::move(other.sockets_)) {
  other.sockets_.clear();
}

InheritedSockets::~InheritedSockets() { close_unused(); }

int InheritedSockets::take(std::string_view listener, const config::Endpoint& endpoint, std::string* error) {
  auto pick = [&](size_t i) {
    int fd = sockets_[i].fd;
    std::string why;
    if (!usable(fd, endpoint, &why)) {
      *error = "inherited socket fd " + std::to_string(fd) + " (" + local_address(fd) + ") for the " +
               std::string(listener) + " listener: " + why;
      return -1;
    }
    sockets_.erase(sockets_.begin() + static_cast<std::ptrdiff_t>(i));
    return fd;
  };
  for (size_t i = 0; i < sockets_.size(); ++i) {
    if (sockets_[i].name == listener) return pick(i);
  }
  for (size_t i = 0; i < sockets_.size(); ++i) {
    if (same_address(sockets_[i].fd, endpoint)) return pick(i);
  }
  return -1;
}

std::vector<std::string> InheritedSockets::close_unused() {
  std::vector<std::string> out;
  for (const Socket& s : sockets_) {
    out.push_back("fd " + std::to_string(s.fd) + (s.name.empty() ? "" : " (name \"" + s.name + "\")") + " " +
                  local_address(s.fd));
    ::close(s.fd);
  }
  sockets_.clear();
  return out;
}

}  // namespace fedproxy::app
