// Who may use the admin listener, from where (SPEC §10 "Admin
// authentication"): a pure decision over one request, taken before any
// admin endpoint runs. In order:
//   1. the target is origin-form ("/status"), else 400 bad_request;
//   2. the Host names this listener (its address as the client reached it,
//      or localhost; the port, when written, must be the listener's) or an
//      admin.allowed_hosts entry, else 421 misdirected_request (DNS
//      rebinding); an HTTP/1.1 request without Host is 400 bad_request;
//   3. a state-changing method (anything but GET, HEAD, OPTIONS) carrying an
//      Origin header is 403 forbidden_origin (a browser's cross-site form);
//   4. with tokens configured, every path but /healthz, /readyz and /metrics
//      needs "Authorization: Bearer <token>" matching one of them, else
//      401 unauthorized with WWW-Authenticate: Bearer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/host.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::core {

// One configured admin token: the actor it speaks for and the SHA-256 (hex)
// of its value. The value itself is not kept.
struct AdminToken {
  std::string name;
  std::string sha256_hex;
};

// The gate's configuration, part of every snapshot (a reload rotates tokens).
struct AdminAccess {
  std::vector<AdminToken> tokens;  // empty: no authentication
  std::vector<config::HostPort> allowed_hosts;
};

// The listener's side of an admin connection: where the client connected.
struct AdminLocalAddress {
  bool unix_socket = false;
  std::string ip;  // canonical text ("127.0.0.1", "::1"); "" for a unix socket
  uint16_t port = 0;
};

struct AdminGateInput {
  std::string_view method;
  std::string_view target;  // as received
  int version_minor = 1;
  const http1::Headers& headers;
  const AdminLocalAddress& local;
};

struct AdminVerdict {
  int status = 0;                  // 0: let through; else the refusal's status
  std::string_view code;           // SPEC §6 error code of the refusal
  std::string_view message;
  std::string_view extra_headers;  // preformatted lines ("WWW-Authenticate: Bearer\r\n")
  std::string actor;               // name of the token that matched ("" without tokens)
  bool allowed() const { return status == 0; }
};

// The paths a probe or a scraper reaches without a token.
bool is_open_admin_path(std::string_view path);

AdminVerdict check_admin_request(const AdminGateInput& request, const AdminAccess& access);

// SHA-256 (hex) of a token value, the form AdminToken keeps.
std::string admin_token_digest(std::string_view token);

}  // namespace fedproxy::core
