// systemd socket activation (sd_listen_fds(3)), by hand: when $LISTEN_PID is
// our pid, $LISTEN_FDS listening sockets start at fd 3, optionally named by
// $LISTEN_FDNAMES (colon-separated, from FileDescriptorName= of the .socket
// unit). The variables are removed after reading, as sd_listen_fds(1) does,
// so nothing we might start later takes them for its own.
//
// A listener takes the socket named after it ("ingress", "egress", "admin"),
// else the one whose local address (getsockname) is its configured address.
// Sockets nobody takes are closed, with a warning: a .socket unit that
// passes a socket we do not use is a mistake the operator should see.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace fedproxy::app {

class InheritedSockets {
 public:
  static InheritedSockets from_environment();
  InheritedSockets() = default;
  ~InheritedSockets();  // closes what was not taken
  InheritedSockets(InheritedSockets&&) noexcept;
  InheritedSockets& operator=(InheritedSockets&&) = delete;
  InheritedSockets(const InheritedSockets&) = delete;
  InheritedSockets& operator=(const InheritedSockets&) = delete;

  bool empty() const { return sockets_.empty(); }
  // The fd for this listener (the caller owns it now), or -1 when none
  // matches. -1 with *error set when the matching socket cannot serve it (not
  // a listening stream socket, or of another family than the address).
  int take(std::string_view listener, const config::Endpoint& endpoint, std::string* error);
  // "fd 5 (name \"metrics\", 127.0.0.1:9000)" for each socket not taken; closes them.
  std::vector<std::string> close_unused();

 private:
  struct Socket {
    int fd;
    std::string name;
  };
  std::vector<Socket> sockets_;
};

}  // namespace fedproxy::app
