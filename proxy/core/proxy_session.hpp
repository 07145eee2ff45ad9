// One client connection of a listener, in either direction: on ingress a
// peer's fedproxy over mTLS, forwarded to the local app; on egress the local
// app, forwarded to a peer over mTLS. TLS handshake, HTTP/1.1 request
// parsing, the authorization decision, forwarding and streaming the response
// back. One exchange at a time: pipelined requests wait in the input buffer
// (bounded) and are answered in order.
//
// The phase, its deadline and the outcome of each exchange are decided by a
// pure SessionMachine; this class is the glue that feeds it events from the
// transports and the upstream connection and executes what it decides.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/base/outcome.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/session_machine.hpp"
#include "proxy/core/upstream.hpp"
#include "proxy/http1/request_parser.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/net/transport.hpp"

namespace fedproxy::core {

class ProxyServer;

class ProxySession final : public net::Deletable,
                             private net::TransportHandler,
                             private http1::RequestSink,
                             private UpstreamUser {
 public:
  ProxySession(ProxyServer& server, std::unique_ptr<net::Transport> downstream);
  ~ProxySession() override;
  void start(std::unique_ptr<tls::TlsEngine> tls);
  // Server shutdown: close if idle, else after the current response.
  void begin_drain();
  void close_now();

 private:
  struct Exchange;

  // TransportHandler (downstream)
  void on_transport_connected() override;
  void on_transport_data(const char* data, size_t len) override;
  void on_transport_eof() override;
  void on_transport_error(const std::string& reason) override;
  void on_transport_drained() override;
  // RequestSink
  void on_request_head(http1::RequestHead&& head) override;
  void on_request_body(const char* data, size_t len) override;
  void on_request_complete() override;
  // UpstreamUser
  void on_upstream_head(http1::ResponseHead&& head) override;
  void on_upstream_body(const char* data, size_t len) override;
  void on_upstream_complete() override;
  void on_upstream_failed(UpstreamFailure failure, const std::string& reason, bool reused,
                          bool got_bytes) override;
  void on_upstream_drained() override;
  void on_upstream_connected() override;

  void pump();
  // WebSocket: after the app's 101, bytes pass raw both ways until either
  // side closes or tunnel_idle_ms passes without a byte.
  void start_tunnel(http1::ResponseHead&& head);
  void tunnel_to_upstream(const char* data, size_t len);
  void forward(std::string_view head_bytes);
  // Bytes for the app are collected while a parse pass runs and written only
  // after it ends without error, so a request found malformed within the
  // bytes at hand (a bad chunk size after the head) never reaches the app.
  void up_write(const char* data, size_t len) { up_out_.append(data, len); }
  void flush_upstream();
  void respond_local(int status, const char* code, const std::string& message, bool close,
                     const std::string& extra_headers = {});
  // A complete response fedproxy produces itself (bytes ready to send).
  void respond_local_bytes(int status, std::string bytes, bool close);
  bool serve_well_known();
  // Ingress: reads the request-target once (SPEC §4) into the exchange, or
  // answers 400 and returns false.
  bool canonicalize_target(Exchange& ex);
  // For a request fedproxy answers without authorizing it (a refusal, the
  // node manifest): the peer its certificate names, for logs, metrics and
  // audit.
  void label_with_peer(Exchange& ex);
  // What the authorizer sees of the exchange's request.
  RequestView view_of(const Exchange& ex) const;
  // The peer's certificate was revoked by a CRL loaded after its handshake.
  bool revoked_since_handshake();
  void on_parse_error();
  void finish_exchange();
  // The audit/metrics record of the current exchange: exactly once, when the
  // machine says one is owed.
  void report(base::Outcome outcome);
  // How an exchange whose response ended ended.
  base::Outcome outcome_of_response() const;
  // Re-arm the one timer at the machine's deadline.
  void sync_timer();
  void on_timeout();
  // The connection ends now: a record owed by the machine for `cut` is
  // written first.
  void cut(Cut cause);
  void finish(bool graceful);  // close the session (once)
  bool lifetime_exceeded() const;
  uint64_t now() const;

  ProxyServer& server_;
  std::unique_ptr<net::Transport> down_;
  http1::RequestParser parser_;
  SessionMachine machine_;
  net::Timer timer_;
  std::string inbuf_;
  size_t inpos_ = 0;
  std::string up_out_;
  std::string forwarding_lines_;  // X-Forwarded-For/-Proto, Forwarded for this peer (ingress)
  std::unique_ptr<Exchange> ex_;
  UpstreamConnection* up_ = nullptr;
  uint64_t created_ms_ = 0;
  uint64_t tls_generation_ = 0;  // the server's TLS snapshot at accept
  uint64_t requests_ = 0;
  bool draining_ = false;
  bool peer_eof_ = false;
  bool finished_ = false;  // finish() ran: no event reaches this session
  // pump() re-entrancy: events raised while a parse pass runs are handled
  // by the same pass.
  bool in_pump_ = false;
  bool pump_again_ = false;
};

}  // namespace fedproxy::core
