// Connections to the local app (TCP or unix socket), pooled with keep-alive.
// One exchange at a time per connection; the response is parsed and handed
// to the UpstreamUser (the ingress session) as events.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.hpp"
#include "config/config.hpp"
#include "proxy/http1/response_parser.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/net/transport.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::core {

enum class UpstreamFailure {
  connect_failed,   // refused, unreachable, connect timeout, TLS handshake failed
  identity_mismatch,  // TLS upstream (a peer) presented the wrong URI SAN or pin
  timeout,          // no (more) response bytes within upstream_response_ms
  closed_early,     // closed or reset before the response was complete
  bad_response,     // unparseable response
};

class UpstreamUser {
 public:
  virtual void on_upstream_head(http1::ResponseHead&& head) = 0;
  virtual void on_upstream_body(const char* data, size_t len) = 0;
  // The connection has already been returned to the pool or closed.
  virtual void on_upstream_complete() = 0;
  // The connection is gone. got_bytes: any response byte was received.
  virtual void on_upstream_failed(UpstreamFailure failure, const std::string& reason,
                                  bool reused_connection, bool got_bytes) = 0;
  virtual void on_upstream_drained() = 0;
  // A new connection is established (and its peer identity checked).
  virtual void on_upstream_connected() {}

 protected:
  ~UpstreamUser() = default;
};

struct UpstreamOptions {
  config::Endpoint endpoint;
  // TLS upstreams (egress to a peer): the client context, the URI SAN the
  // peer's certificate must carry, the optional DER SHA-256 pin, the key
  // hashes of the peer's own trust anchors (sorted), one of which its chain
  // must reach, and, for a peer without anchors, the keys of CAs that speak
  // only for other peers (sorted), none of which its chain may reach.
  std::shared_ptr<const tls::TlsContext> tls;
  std::string expected_uri;
  std::string expected_pin;
  std::vector<std::string> expected_anchor_spki;
  std::vector<std::string> refused_anchor_spki;
  std::string name;  // for messages: the peer slug, or the endpoint
  uint32_t connect_timeout_ms = 5000;
  uint32_t response_timeout_ms = 60000;
  uint32_t idle_timeout_ms = 60000;  // pooled idle connections are closed after this
  uint32_t max_idle = 64;
};

// What a reload may change in an upstream's options: the timeouts and the
// idle-pool size (never the endpoint or the identity checks).
void take_run_time_options(UpstreamOptions& to, const UpstreamOptions& from);

class UpstreamPool;

class UpstreamConnection final : public net::Deletable,
                                 private net::TransportHandler,
                                 private http1::ResponseSink {
 public:
  UpstreamConnection(UpstreamPool& pool);
  ~UpstreamConnection() override;

  // Bytes of the request (head, body, chunk framing) in order.
  void write(const char* data, size_t len);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // The whole request has been written.
  void request_done();
  bool above_high_watermark() const;
  void pause_reading();
  void resume_reading();
  // The user no longer wants this exchange: the connection is closed (its
  // state is unknown) and no callback reaches the user any more.
  void abandon();

  bool reused() const { return exchanges_ > 1; }
  bool connecting() const { return !connected_; }
  // The request asks for a WebSocket upgrade: a 101 turns this connection
  // into a tunnel. Its bytes then reach the user as on_upstream_body, raw;
  // on_upstream_complete is its close. Never pooled again.
  void expect_upgrade() { parser_.expect_upgrade(); }

 private:
  friend class UpstreamPool;
  base::Status open();
  void begin(UpstreamUser* user, std::string_view method);
  void park();  // idle in the pool
  void close_and_delete();
  void fail(UpstreamFailure failure, const std::string& reason);
  void arm_response_timer();
  bool waiting_for_response() const;  // an exchange is on, on a connected transport

  // TransportHandler
  void on_transport_connected() override;
  void on_transport_data(const char* data, size_t len) override;
  void on_transport_eof() override;
  void on_transport_error(const std::string& reason) override;
  void on_transport_drained() override;
  // ResponseSink
  void on_response_head(http1::ResponseHead&& head) override;
  void on_response_body(const char* data, size_t len) override;
  void on_response_complete() override;

  UpstreamPool& pool_;
  std::unique_ptr<net::Transport> transport_;
  http1::ResponseParser parser_;
  net::Timer timer_;
  UpstreamUser* user_ = nullptr;
  bool connected_ = false;
  bool idle_ = false;
  bool gone_ = false;
  bool request_done_ = false;
  bool response_complete_ = false;
  bool keep_alive_ = false;
  uint64_t identity_generation_ = 0;  // the pool's when this connection was opened
  bool got_bytes_ = false;
  bool session_saved_ = false;
  bool tunnel_ = false;  // after a 101: raw bytes both ways
  uint64_t exchanges_ = 0;
};

class UpstreamPool {
 public:
  UpstreamPool(net::Loop& loop, UpstreamOptions options);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // An idle pooled connection, or a new one being connected; an error when a
  // connection cannot even be started.
  base::Result<UpstreamConnection*> acquire(UpstreamUser* user, std::string_view method);
  // Close every idle connection; with stop_pooling, connections finishing
  // later are closed instead of parked (shutdown: idle keep-alive
  // connections must not keep the loop alive).
  void close_idle(bool stop_pooling = false);

  // Readable from any thread (the admin loop sums the workers' pools).
  size_t idle_count() const { return idle_gauge_.load(std::memory_order_relaxed); }
  // Loop time of the last failed connect (0 = none): egress skips an endpoint
  // that failed recently and fails over to the next one in manifest order.
  uint64_t last_connect_failure_ms() const { return last_connect_failure_ms_; }
  uint64_t connections_opened() const { return opened_; }
  net::Loop& loop() { return loop_; }
  uint64_t identity_generation() const { return identity_generation_; }
  const UpstreamOptions& options() const { return options_; }
  // A reload: new connections use the new client context (and forget
  // sessions saved under the old one).
  void set_tls(std::shared_ptr<const tls::TlsContext> tls);
  // A reload: the timeouts and the idle-pool size of `from` apply to the
  // next connection and the next exchange (endpoint and identity stay).
  void set_run_time_options(const UpstreamOptions& from);
  // TLS session resumption: the latest session a connection of this pool
  // saved, offered by the next new connection.
  void save_session(const tls::TlsEngine& engine);
  void offer_session(tls::TlsEngine& engine) const;

 private:
  friend class UpstreamConnection;
  void release(UpstreamConnection* conn);  // back to idle, or closed when full
  void forget(UpstreamConnection* conn);   // remove from idle list
  net::Loop& loop_;
  UpstreamOptions options_;
  std::vector<UpstreamConnection*> idle_;  // most recently used last
  std::atomic<size_t> idle_gauge_{0};
  uint64_t opened_ = 0;
  // Bumped when the certificate we present changes (set_tls): connections
  // opened before are not parked again.
  uint64_t identity_generation_ = 0;
  uint64_t last_connect_failure_ms_ = 0;
  bool pooling_ = true;
  struct SessionDeleter {
    void operator()(mbedtls_ssl_session* s) const;
  };
  std::unique_ptr<mbedtls_ssl_session, SessionDeleter> session_;
};

}  // namespace fedproxy::core
