#include "proxy/core/upstream.hpp"

#include <algorithm>

#include "policy/anchors.hpp"

namespace fedproxy::core {

UpstreamConnection::UpstreamConnection(UpstreamPool& pool)
    : pool_(pool), parser_(*this), timer_(pool.loop(), [this] {
        if (idle_) {
          close_and_delete();  // idle too long in the pool
        } else if (!connected_) {
          fail(UpstreamFailure::connect_failed,
               "connect to " + pool_.options().endpoint.text + " timed out" +
                   (transport_ && transport_->resolving()
                        ? " while resolving " + pool_.options().endpoint.host
                        : std::string()));
        } else {
          fail(UpstreamFailure::timeout, "no response from " + pool_.options().endpoint.text +
                                             " within " +
                                             std::to_string(pool_.options().response_timeout_ms) + " ms");
        }
      }) {}

UpstreamConnection::~UpstreamConnection() = default;

base::Status UpstreamConnection::open() {
  identity_generation_ = pool_.identity_generation();
  std::unique_ptr<tls::TlsEngine> engine;
  if (pool_.options().tls) {
    // No hostname check: the peer is identified by its URI SAN below.
    engine = std::make_unique<tls::TlsEngine>(pool_.options().tls, "");
    pool_.offer_session(*engine);
  }
  std::string error;
  transport_ = net::Transport::connect(pool_.loop(), pool_.options().endpoint, this, std::move(engine), &error);
  if (!transport_) return base::make_error(base::Errc::unavailable, std::move(error));
  timer_.start(pool_.options().connect_timeout_ms);
  return base::ok_status();
}

void UpstreamConnection::begin(UpstreamUser* user, std::string_view method) {
  user_ = user;
  idle_ = false;
  request_done_ = false;
  response_complete_ = false;
  got_bytes_ = false;
  ++exchanges_;
  parser_.expect_response_to(method);
  // upstream_response_ms runs from the request sent (request_done), not
  // while the client is still uploading: that wait is the session's.
  if (connected_) timer_.stop();
}

void UpstreamConnection::arm_response_timer() { timer_.start(pool_.options().response_timeout_ms); }

void UpstreamConnection::write(const char* data, size_t len) {
  if (transport_) transport_->write(data, len);
}

void UpstreamConnection::request_done() {
  request_done_ = true;
  if (waiting_for_response()) arm_response_timer();
}

bool UpstreamConnection::above_high_watermark() const {
  return transport_ && transport_->above_high_watermark();
}

// While the client's side is full we stop reading the app, so the app's
// silence is our doing: the response deadline (which measures the app) waits
// too, and restarts in full when reading resumes. The client's side has its
// own deadline meanwhile.
void UpstreamConnection::pause_reading() {
  if (!transport_) return;
  transport_->pause_reading(net::PauseReason::peer_backpressure);
  if (waiting_for_response()) timer_.stop();
}

void UpstreamConnection::resume_reading() {
  if (!transport_) return;
  transport_->resume_reading(net::PauseReason::peer_backpressure);
  if (waiting_for_response()) arm_response_timer();
}

bool UpstreamConnection::waiting_for_response() const {
  // Sent whole, or answering already (an early response): the app's turn.
  return connected_ && user_ && !idle_ && !gone_ && !tunnel_ && (request_done_ || got_bytes_);
}

void UpstreamConnection::abandon() {
  user_ = nullptr;
  close_and_delete();
}

void UpstreamConnection::park() {
  idle_ = true;
  user_ = nullptr;
  timer_.start(pool_.options().idle_timeout_ms);
  transport_->resume_reading(net::PauseReason::peer_backpressure);
}

void UpstreamConnection::close_and_delete() {
  if (gone_) return;
  gone_ = true;
  if (idle_) pool_.forget(this);
  timer_.stop();
  if (transport_) transport_->close();
  pool_.loop().defer_delete(this);
}

void UpstreamConnection::fail(UpstreamFailure failure, const std::string& reason) {
  if (failure == UpstreamFailure::connect_failed) pool_.last_connect_failure_ms_ = pool_.loop().now_ms();
  UpstreamUser* user = user_;
  user_ = nullptr;
  bool reused = exchanges_ > 1;
  bool got = got_bytes_;
  close_and_delete();
  if (user) user->on_upstream_failed(failure, reason, reused, got);
}

void UpstreamConnection::on_transport_connected() {
  if (const tls::TlsEngine* engine = transport_->tls()) {
    const auto& opts = pool_.options();
    const auto& sans = engine->peer().uri_sans;
    bool uri_ok = opts.expected_uri.empty() ||
                  std::find(sans.begin(), sans.end(), opts.expected_uri) != sans.end();
    bool pin_ok = opts.expected_pin.empty() || engine->peer().der_sha256 == opts.expected_pin;
    const auto& chain = engine->peer().chain_spki_sha256;
    bool anchor_ok = opts.expected_anchor_spki.empty()
                         ? !policy::chain_reaches_anchor(chain, opts.refused_anchor_spki)
                         : policy::chain_reaches_anchor(chain, opts.expected_anchor_spki);
    if (!uri_ok || !pin_ok || !anchor_ok) {
      std::string got = sans.empty() ? std::string("no URI SAN") : sans.front();
      fail(UpstreamFailure::identity_mismatch,
           !uri_ok   ? opts.name + " presented " + got + ", expected " + opts.expected_uri
           : !pin_ok ? opts.name + " presented a certificate that does not match its pin"
                     : opts.name + " presented a certificate that is not issued by one of its trust anchors");
      return;
    }
  }
  connected_ = true;
  if (user_ && request_done_) {
    arm_response_timer();
  } else {
    timer_.stop();  // a body still streams in: the session's deadline covers it
  }
  if (user_) user_->on_upstream_connected();
}

void UpstreamConnection::on_transport_data(const char* data, size_t len) {
  if (idle_ || !user_) {
    // An idle keep-alive connection must stay silent; anything else means the
    // app is confused about framing: drop the connection.
    close_and_delete();
    return;
  }
  got_bytes_ = true;
  if (tunnel_) {
    user_->on_upstream_body(data, len);  // the tunnel's idle deadline is the session's
    return;
  }
  arm_response_timer();
  size_t pos = 0;
  while (pos < len && !gone_) {
    size_t n = parser_.feed(data + pos, len - pos);
    pos += n;
    if (parser_.failed()) {
      fail(UpstreamFailure::bad_response, "invalid response from upstream: " + parser_.error_detail());
      return;
    }
    if (response_complete_) break;
    if (n == 0) break;
  }
  if (gone_ || !response_complete_) return;
  if (tunnel_) {
    // 101: what follows the head is the upgraded protocol's.
    timer_.stop();
    if (pos < len) user_->on_upstream_body(data + pos, len - pos);
    return;
  }
  // The response is complete. Reuse only a clean connection: keep-alive, the
  // whole request sent, and no stray bytes after the response.
  parser_.resume();
  UpstreamUser* user = user_;
  user_ = nullptr;
  bool reusable = keep_alive_ && request_done_ && pos == len;
  if (transport_->tls() && !session_saved_) {
    session_saved_ = true;  // once per connection: a ticket has arrived by now
    pool_.save_session(*transport_->tls());
  }
  if (reusable) {
    pool_.release(this);
  } else {
    close_and_delete();
  }
  user->on_upstream_complete();
}

void UpstreamConnection::on_transport_eof() {
  if (tunnel_ && user_) {
    UpstreamUser* user = user_;
    user_ = nullptr;
    close_and_delete();
    user->on_upstream_complete();  // the tunnel's end
    return;
  }
  if (user_ && parser_.in_message() && parser_.finish() && response_complete_) {
    // until-close body ended by the close: that is its normal end.
    UpstreamUser* user = user_;
    user_ = nullptr;
    close_and_delete();
    user->on_upstream_complete();
    return;
  }
  if (user_) {
    fail(UpstreamFailure::closed_early,
         "upstream " + pool_.options().endpoint.text + " closed the connection before a complete response");
    return;
  }
  close_and_delete();
}

void UpstreamConnection::on_transport_error(const std::string& reason) {
  fail(connected_ ? UpstreamFailure::closed_early : UpstreamFailure::connect_failed, reason);
}

void UpstreamConnection::on_transport_drained() {
  if (user_) user_->on_upstream_drained();
}

void UpstreamConnection::on_response_head(http1::ResponseHead&& head) {
  keep_alive_ = head.keep_alive;
  tunnel_ = head.status == 101;  // the parser allows it only after expect_upgrade()
  if (user_) user_->on_upstream_head(std::move(head));
}

void UpstreamConnection::on_response_body(const char* data, size_t len) {
  if (user_) user_->on_upstream_body(data, len);
}

void UpstreamConnection::on_response_complete() {
  response_complete_ = true;
  timer_.stop();
}

UpstreamPool::UpstreamPool(net::Loop& loop, UpstreamOptions options)
    : loop_(loop), options_(std::move(options)) {}

UpstreamPool::~UpstreamPool() { close_idle(); }

void UpstreamPool::SessionDeleter::operator()(mbedtls_ssl_session* s) const {
  mbedtls_ssl_session_free(s);
  delete s;
}

void take_run_time_options(UpstreamOptions& to, const UpstreamOptions& from) {
  to.connect_timeout_ms = from.connect_timeout_ms;
  to.response_timeout_ms = from.response_timeout_ms;
  to.idle_timeout_ms = from.idle_timeout_ms;
  to.max_idle = from.max_idle;
}

void UpstreamPool::set_run_time_options(const UpstreamOptions& from) { take_run_time_options(options_, from); }

namespace {
// The certificate a TLS client context presents (its leaf), for comparing.
std::string_view presented_cert(const tls::TlsContext* ctx) {
  if (!ctx) return {};
  const mbedtls_x509_crt* leaf = ctx->bundle().cert_chain();
  return {reinterpret_cast<const char*>(leaf->raw.p), leaf->raw.len};
}
}  // namespace

void UpstreamPool::set_tls(std::shared_ptr<const tls::TlsContext> tls) {
  if (presented_cert(options_.tls.get()) != presented_cert(tls.get())) {
    // Our certificate changed (a renewal, a CA rotation): a connection made
    // with the old one keeps that identity at the peer for as long as it
    // lives, and the peer may stop trusting its issuer. Idle ones close now,
    // busy ones when their exchange ends (release).
    ++identity_generation_;
    close_idle();
  }
  options_.tls = std::move(tls);
  session_.reset();  // a session of the old context must not resume
}

void UpstreamPool::save_session(const tls::TlsEngine& engine) {
  if (!session_) {
    session_.reset(new mbedtls_ssl_session);
    mbedtls_ssl_session_init(session_.get());
  }
  if (!engine.save_session(session_.get())) session_.reset();
}

void UpstreamPool::offer_session(tls::TlsEngine& engine) const {
  if (session_) engine.set_session(session_.get());
}

base::Result<UpstreamConnection*> UpstreamPool::acquire(UpstreamUser* user, std::string_view method) {
  if (!idle_.empty()) {
    UpstreamConnection* conn = idle_.back();
    idle_.pop_back();
    idle_gauge_.store(idle_.size(), std::memory_order_relaxed);
    conn->begin(user, method);
    return conn;
  }
  auto* conn = new UpstreamConnection(*this);
  if (base::Status opened = conn->open(); !opened) {
    delete conn;
    return opened.error();
  }
  ++opened_;
  conn->begin(user, method);
  return conn;
}

void UpstreamPool::release(UpstreamConnection* conn) {
  if (!pooling_ || idle_.size() >= options_.max_idle || conn->identity_generation_ != identity_generation_) {
    conn->close_and_delete();
    return;
  }
  conn->park();
  idle_.push_back(conn);
  idle_gauge_.store(idle_.size(), std::memory_order_relaxed);
}

void UpstreamPool::forget(UpstreamConnection* conn) {
  idle_.erase(std::remove(idle_.begin(), idle_.end(), conn), idle_.end());
  idle_gauge_.store(idle_.size(), std::memory_order_relaxed);
}

void UpstreamPool::close_idle(bool stop_pooling) {
  if (stop_pooling) pooling_ = false;
  std::vector<UpstreamConnection*> idle;
  idle.swap(idle_);
  idle_gauge_.store(0, std::memory_order_relaxed);
  for (auto* conn : idle) {
    conn->idle_ = false;  // already removed from the list
    conn->close_and_delete();
  }
}

}  // namespace fedproxy::core
