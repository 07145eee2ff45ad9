// One blocking HTTP/1.1 request to a running fedproxy's admin listener, for
// CLI verbs (`fedproxy reload`). Blocking is right here: the CLI has nothing
// else to do, and a bounded timeout keeps systemd's ExecReload from hanging.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <picojson.h>

#include "config/config.hpp"
#include "proxy/app/args.hpp"

namespace fedproxy::app {

struct AdminReply {
  bool reached = false;  // false: no HTTP answer (see error)
  int status = 0;
  std::string head;  // status line and header lines
  std::string body;
  std::string error;
};

// Sends METHOD PATH with "Host: localhost" (which every admin listener
// answers to) and "Authorization: Bearer TOKEN" when token is not empty. A
// wildcard listen address (0.0.0.0, ::) is reached over loopback.
// body: sent as application/json when not empty; extra_headers: preformatted
// "Name: value\r\n" lines (If-Match).
AdminReply admin_call(const config::Endpoint& admin, const std::string& method, const std::string& path,
                      const std::string& token, int timeout_ms, const std::string& body = {},
                      const std::string& extra_headers = {});

// Where a CLI verb finds the running fedproxy and its token, the same way
// for every verb: --admin ADDR, else admin.listen of --config FILE (or
// $FEDPROXY_CONFIG); the token from --token-file, else $FEDPROXY_ADMIN_TOKEN,
// else the config's admin.token_file (or first admin.tokens file). A config
// the proxy would refuse still tells where to ask.
struct AdminTarget {
  config::Endpoint endpoint;
  std::string token;
};
// nullopt with *error set: a usage error (exit 2).
std::optional<AdminTarget> resolve_admin_target(const ParsedArgs& opts, std::string* error);

// One CLI verb's exchange with the admin API (peers, grants, peer invite|join):
// unreachable → the reason on stderr, exit 3; a refusal (not 2xx) → error,
// message and each field problem on stderr (the body on stdout with
// --json), exit 1; a 2xx that is not JSON → exit 3. exit_code is -1 when
// the answer is a 2xx JSON document (`json`).
struct VerbAnswer {
  int exit_code = -1;
  AdminReply reply;
  picojson::value json;
};
VerbAnswer call_admin_verb(const std::string& name, const AdminTarget& target, const std::string& method,
                           const std::string& path, const std::string& body, const std::string& headers,
                           bool json_out);

// A member of a JSON object as text (a string as is, anything else
// serialised); "" when absent.
std::string json_field(const picojson::value& v, const std::string& name);

// The value of a response header of reply.head ("" when absent).
std::string reply_header(const AdminReply& reply, std::string_view name);

}  // namespace fedproxy::app
