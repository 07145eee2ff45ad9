#include "proxy/core/proxy_server.hpp"

#include "proxy/core/proxy_session.hpp"

namespace fedproxy::core {

ProxyServer::ProxyServer(net::Loop& loop, ProxyOptions options,
                             std::shared_ptr<const tls::TlsContext> tls, Authorizer& authorizer,
                             CoreEvents& events, std::shared_ptr<ConnectionCount> count)
    : loop_(loop),
      options_(std::move(options)),
      tls_(std::move(tls)),
      authorizer_(&authorizer),
      events_(events),
      pool_(loop, options_.upstream),
      count_(count ? std::move(count) : std::make_shared<ConnectionCount>()) {}

ProxyServer::~ProxyServer() { close_all(); }

bool ProxyServer::listen(const config::Endpoint& endpoint, std::string* error, bool reuse_port,
                           int inherited_fd) {
  auto listener = net::Listener::create(
      loop_, endpoint, [this](std::unique_ptr<net::Transport> t) { on_accept(std::move(t)); }, reuse_port,
      inherited_fd);
  if (!listener) {
    *error = listener.message();
    return false;
  }
  listener_ = std::move(listener).value();
  bound_ = listener_->bound_address();
  return true;
}

const std::string& ProxyServer::bound_address() const { return bound_; }

void ProxyServer::on_accept(std::unique_ptr<net::Transport> transport) {
  if (shutting_down_) return;  // transport destructor closes it
  if (!count_->try_acquire(options_.max_connections)) {
    ++rejected_over_limit_;
    events_.on_connection_event(transport->peer_address(), "connection_limit",
                                "max_connections reached; connection closed");
    return;
  }
  accepted_here_.fetch_add(1, std::memory_order_relaxed);
  auto* session = new ProxySession(*this, std::move(transport));
  sessions_.insert(session);
  // Each connection keeps the TLS context it started with (mbedTLS needs the
  // config to outlive the session); a reload only affects new connections.
  session->start(tls_ ? std::make_unique<tls::TlsEngine>(tls_) : nullptr);
}

void ProxyServer::session_gone(ProxySession* session) {
  if (sessions_.erase(session)) count_->release();
}

void ProxyServer::begin_shutdown() {
  shutting_down_ = true;
  listener_.reset();
  // begin_drain may remove sessions from the set: iterate over a copy.
  std::vector<ProxySession*> sessions(sessions_.begin(), sessions_.end());
  for (auto* s : sessions) s->begin_drain();
  pool_.close_idle(true);
}

void ProxyServer::close_all() {
  shutting_down_ = true;
  listener_.reset();
  std::vector<ProxySession*> sessions(sessions_.begin(), sessions_.end());
  for (auto* s : sessions) s->close_now();
  pool_.close_idle(true);
}

PhaseTimeouts ProxyServer::phase_timeouts() const {
  PhaseTimeouts t;
  t.handshake_ms = options_.handshake_timeout_ms;
  t.header_ms = options_.header_timeout_ms;
  t.idle_ms = options_.idle_timeout_ms;
  t.upstream_connect_ms = options_.upstream.connect_timeout_ms;
  t.upstream_response_ms = options_.upstream.response_timeout_ms;
  t.tunnel_idle_ms = options_.tunnel_idle_timeout_ms;
  return t;
}

void ProxyServer::set_run_time_options(const ProxyOptions& from) {
  options_.parser_limits = from.parser_limits;
  options_.max_connections = from.max_connections;
  options_.handshake_timeout_ms = from.handshake_timeout_ms;
  options_.header_timeout_ms = from.header_timeout_ms;
  options_.idle_timeout_ms = from.idle_timeout_ms;
  options_.max_conn_lifetime_ms = from.max_conn_lifetime_ms;
  options_.max_requests_per_conn = from.max_requests_per_conn;
  options_.tunnel_idle_timeout_ms = from.tunnel_idle_timeout_ms;
  options_.http = from.http;
  pool_.set_run_time_options(from.upstream);
}

}  // namespace fedproxy::core
