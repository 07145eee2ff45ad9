// One blocking HTTP/1.1 request to a running fedproxy's admin listener, for
// CLI verbs (`fedproxy reload`). Blocking is right here: the CLI has nothing
// else to do, and a bounded timeout keeps systemd's ExecReload from hanging.
#pragma once

#include <string>

#include "config/config.hpp"

namespace fedproxy::app {

struct AdminReply {
  bool reached = false;  // false: no HTTP answer (see error)
  int status = 0;
  std::string body;
  std::string error;
};

// Sends METHOD PATH with "Host: localhost" (which every admin listener
// answers to) and "Authorization: Bearer TOKEN" when token is not empty. A
// wildcard listen address (0.0.0.0, ::) is reached over loopback.
AdminReply admin_call(const config::Endpoint& admin, const std::string& method, const std::string& path,
                      const std::string& token, int timeout_ms);

}  // namespace fedproxy::app
