// The admin listener (SPEC §10): plain HTTP on loopback, a unix socket or
// (for probes) the pod address. Each request passes the admin gate
// (admin_gate.hpp) first; only then does the AdminHandler the app provides
// answer it. Every response leaves through one writer here.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

#include "config/config.hpp"
#include "proxy/core/admin_gate.hpp"
#include "proxy/http1/message.hpp"
#include "proxy/net/listener.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::core {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Set by error(): a SPEC §6 refusal, whose body make_error_response writes
  // from code and message (body is unused then).
  std::string error_code;
  std::string message;
  std::string extra_headers;  // preformatted "Name: value\r\n" lines
  // With error(): a JSON array added to the §6 body as "fields" (422 invalid).
  std::string error_fields_json;
  // Set when the answer comes later (work off the loop, e.g. a join): the
  // server calls it with a function to call once with the answer; the
  // connection reads nothing meanwhile. A connection gone by then drops it.
  std::function<void(std::function<void(AdminResponse)>)> later;

  static AdminResponse error(int status, std::string code, std::string message,
                             std::string extra_headers = {});
};

// One admin request as the handler (and the log) sees it.
struct AdminRequest {
  std::string_view method;
  std::string_view path;  // the target without its query
  std::string_view query;
  const http1::Headers& headers;
  std::string_view peer;        // the client's address, for logs
  std::string_view request_id;  // X-Request-Id when valid, else a new one
  std::string_view actor;       // the token's name ("" when no tokens are configured)
  std::string_view body = {};   // the request body (at most kMaxAdminBodyBytes)
};

// A larger admin request body is answered 413 payload_too_large.
constexpr size_t kMaxAdminBodyBytes = 1u << 20;

class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  // Tokens and allowed hosts now (read for every request: a reload changes them).
  virtual const AdminAccess& admin_access() const = 0;
  // A request the gate let through.
  virtual AdminResponse handle_admin(const AdminRequest& request) = 0;
  // A request the gate refused (the server answers it); for the log.
  virtual void admin_refused(const AdminRequest& request, const AdminVerdict& verdict) = 0;
};

class AdminConnection;

// The same server carries the peering listener (SPEC §13): TLS with the node
// certificate, no admin gate (the join secret is the credential there).
struct AdminServerOptions {
  std::shared_ptr<const tls::TlsContext> tls;  // null: plain HTTP
  bool gated = true;                           // false: every request reaches the handler
  size_t max_body_bytes = kMaxAdminBodyBytes;
};

class AdminServer {
 public:
  AdminServer(net::Loop& loop, AdminHandler& handler, AdminServerOptions options = {})
      : loop_(loop), handler_(handler), options_(std::move(options)) {}
  ~AdminServer();
  // inherited_fd: see net::Listener (socket activation).
  bool listen(const config::Endpoint& endpoint, std::string* error, int inherited_fd = -1);
  const std::string& bound_address() const { return bound_; }
  void close();  // stop listening and close open admin connections

  net::Loop& loop() { return loop_; }
  AdminHandler& handler() { return handler_; }
  const AdminServerOptions& options() const { return options_; }
  // A reload: new connections use this TLS context (open ones keep theirs).
  void set_tls(std::shared_ptr<const tls::TlsContext> tls) { options_.tls = std::move(tls); }
  void connection_gone(AdminConnection* c) { connections_.erase(c); }

 private:
  net::Loop& loop_;
  AdminHandler& handler_;
  AdminServerOptions options_;
  std::unique_ptr<net::Listener> listener_;
  std::string bound_;
  std::unordered_set<AdminConnection*> connections_;
};

}  // namespace fedproxy::core
