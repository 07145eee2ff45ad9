#include "proxy/core/ingress_server.hpp"

#include "proxy/core/ingress_session.hpp"

namespace fedproxy::core {

IngressServer::IngressServer(net::Loop& loop, IngressOptions options,
                             std::shared_ptr<const tls::TlsContext> tls, Authorizer& authorizer,
                             CoreEvents& events)
    : loop_(loop),
      options_(std::move(options)),
      tls_(std::move(tls)),
      authorizer_(&authorizer),
      events_(events),
      pool_(loop, options_.upstream) {}

IngressServer::~IngressServer() { close_all(); }

bool IngressServer::listen(const policy::Endpoint& endpoint, std::string* error) {
  listener_ = net::Listener::create(
      loop_, endpoint, [this](std::unique_ptr<net::Transport> t) { on_accept(std::move(t)); }, error);
  if (!listener_) return false;
  bound_ = listener_->bound_address();
  return true;
}

const std::string& IngressServer::bound_address() const { return bound_; }

void IngressServer::on_accept(std::unique_ptr<net::Transport> transport) {
  if (shutting_down_) return;  // transport destructor closes it
  if (sessions_.size() >= options_.max_connections) {
    ++rejected_over_limit_;
    events_.on_connection_event(transport->peer_address(), "connection_limit",
                                "max_connections reached; connection closed");
    return;
  }
  ++accepted_;
  auto* session = new IngressSession(*this, std::move(transport));
  sessions_.insert(session);
  // Each connection keeps the TLS context it started with (mbedTLS needs the
  // config to outlive the session); a reload only affects new connections.
  session->start(tls_ ? std::make_unique<tls::TlsEngine>(tls_) : nullptr);
}

void IngressServer::session_gone(IngressSession* session) { sessions_.erase(session); }

void IngressServer::begin_shutdown() {
  shutting_down_ = true;
  listener_.reset();
  // begin_drain may remove sessions from the set: iterate over a copy.
  std::vector<IngressSession*> sessions(sessions_.begin(), sessions_.end());
  for (auto* s : sessions) s->begin_drain();
  pool_.close_idle(true);
}

void IngressServer::close_all() {
  shutting_down_ = true;
  listener_.reset();
  std::vector<IngressSession*> sessions(sessions_.begin(), sessions_.end());
  for (auto* s : sessions) s->close_now();
  pool_.close_idle(true);
}

}  // namespace fedproxy::core
