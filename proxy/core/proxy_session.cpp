#include "proxy/core/proxy_session.hpp"

#include <optional>

#include "policy/policy.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/forwarded_head.hpp"
#include "proxy/core/header_rules.hpp"
#include "proxy/core/proxy_server.hpp"
#include "proxy/core/request_id.hpp"
#include "proxy/http1/serializer.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::core {

namespace {
// Unparsed input we hold before we stop reading from the peer (pipelining).
constexpr size_t kMaxInputBacklog = 64 * 1024;

// Serialization space for bytes the transport copies at once (response
// heads, chunk frames): one per thread, so no allocation per response and no
// memory held by idle sessions.
std::string& scratch_buffer() {
  thread_local std::string buf;
  if (buf.capacity() > 256 * 1024) std::string().swap(buf);  // after a huge chunk
  buf.clear();
  return buf;
}

}  // namespace

struct ProxySession::Exchange {
  http1::RequestHead head;
  // Ingress: the canonical target, the one value policy, audit and the
  // forwarded head use (SPEC §4). Empty on egress.
  std::optional<config::CanonicalTarget> target;
  std::string request_id;
  uint64_t start_ns = 0;  // net::Loop::hrtime_ns() when the request head was read
  bool local = false;           // answered by fedproxy itself
  bool request_done = false;    // whole request parsed
  bool response_started = false;
  bool response_done = false;
  bool close_after = false;     // close the connection after this exchange
  bool chunked_out = false;     // response body re-framed as chunked
  bool head_request = false;
  bool retried = false;
  bool upgrade = false;  // a WebSocket handshake, forwarded as one
  bool tunnel = false;   // the app answered 101: raw bytes both ways
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string retry_bytes;  // the forwarded head of a body-less request
  base::Decision decision = base::Decision::allow;
  std::string reason;
  std::string peer, grant, resource, entity_uri;
  UpstreamPool* pool = nullptr;  // where this exchange is forwarded
  std::vector<UpstreamPool*> fallbacks;  // egress: next endpoints to try
};

ProxySession::ProxySession(ProxyServer& server, std::unique_ptr<net::Transport> downstream)
    : server_(server),
      down_(std::move(downstream)),
      parser_(server.options().parser_limits, *this),
      machine_(server.options().direction, server.phase_timeouts(), server.loop().now_ms(), true),
      timer_(server.loop(), [this] { on_timeout(); }) {
  created_ms_ = server_.loop().now_ms();
  tls_generation_ = server_.tls_generation();
  down_->set_handler(this);
}

ProxySession::~ProxySession() = default;

void ProxySession::start(std::unique_ptr<tls::TlsEngine> tls) {
  down_->start(std::move(tls));  // plain: calls on_transport_connected() now
  sync_timer();
}

uint64_t ProxySession::now() const { return server_.loop().now_ms(); }

void ProxySession::on_transport_connected() {
  machine_.handshake_done(now());
  sync_timer();
}

void ProxySession::on_transport_data(const char* data, size_t len) {
  if (finished_) return;
  if (inpos_ == inbuf_.size()) {
    inbuf_.clear();
    inpos_ = 0;
  }
  if (ex_ && ex_->tunnel) {
    tunnel_to_upstream(data, len);
    return;
  }
  inbuf_.append(data, len);
  if (ex_ && !ex_->request_done) machine_.progress(now());  // the body moves
  pump();
}

void ProxySession::on_transport_eof() {
  peer_eof_ = true;
  if (!ex_) {
    // Between requests (or mid-head: the peer gave up): nothing to answer.
    machine_.close();
    finish(true);
    return;
  }
  if (ex_->tunnel) {
    // The client closed its side of the tunnel: the tunnel ends.
    ex_->response_done = true;
    ex_->close_after = true;
    pump();
    return;
  }
  if (!ex_->request_done) {
    // The peer stopped in the middle of its request body.
    server_.events().on_connection_event(down_->peer_address(), "client_aborted",
                                         "connection closed during the request body");
    cut(Cut::client_eof);
    return;
  }
  ex_->close_after = true;  // half-close after a full request: still answer it
}

void ProxySession::on_transport_error(const std::string& reason) {
  if (machine_.phase() == Phase::handshake) {
    server_.events().on_handshake_failed(down_->peer_address(), reason);
  } else {
    server_.events().on_connection_event(down_->peer_address(), "connection_error", reason);
  }
  cut(Cut::client_error);
}

void ProxySession::on_transport_drained() {
  if (finished_) return;
  if (up_) up_->resume_reading();
  // The client read what we had queued: progress, and no longer our wait.
  machine_.client_backpressure(false);
  machine_.progress(now());
  sync_timer();
}

void ProxySession::pump() {
  if (in_pump_) {
    pump_again_ = true;
    return;
  }
  in_pump_ = true;
  do {
    pump_again_ = false;
    if (finished_) break;
    if (ex_ && ex_->response_done && (ex_->request_done || ex_->close_after)) {
      finish_exchange();
      if (finished_) break;
    }
    if (ex_ && ex_->request_done) break;  // waiting for the response
    if (inpos_ < inbuf_.size() && !parser_.paused()) {
      size_t n = parser_.feed(inbuf_.data() + inpos_, inbuf_.size() - inpos_);
      inpos_ += n;
      if (parser_.error() != http1::ParseError::none) {
        up_out_.clear();   // nothing of a malformed request goes out
        on_parse_error();  // answers, abandons the upstream, marks the close
        pump_again_ = true;
        continue;
      }
      flush_upstream();
      if (n > 0) pump_again_ = true;
    }
  } while (pump_again_);
  in_pump_ = false;
  if (finished_) return;
  if (inpos_ > 0 && inpos_ >= inbuf_.size() / 2) {
    inbuf_.erase(0, inpos_);
    inpos_ = 0;
  }
  if (inbuf_.size() - inpos_ > kMaxInputBacklog) {
    down_->pause_reading(net::PauseReason::input_backlog);
  } else {
    down_->resume_reading(net::PauseReason::input_backlog);
  }
  if (!ex_ && parser_.in_message()) machine_.head_started(now());
  sync_timer();
}

void ProxySession::on_request_head(http1::RequestHead&& head) {
  ex_ = std::make_unique<Exchange>();
  Exchange& ex = *ex_;
  ex.head = std::move(head);
  ex.start_ns = net::Loop::hrtime_ns();
  ex.head_request = ex.head.method == "HEAD";
  const http1::Header* rid = http1::find_header(ex.head.headers, "x-request-id");
  ex.request_id = rid && http1::is_valid_request_id(rid->value) ? rid->value : new_request_id();
  machine_.set_timeouts(server_.phase_timeouts());  // a reload reaches the next request
  machine_.head_read(now());  // from here one record is owed
  if (ex.head.version_minor >= 1 && !http1::find_header(ex.head.headers, "host")) {
    respond_local(400, "bad_request", "An HTTP/1.1 request needs a Host header.", true);  // RFC 9112 §3.2
    return;
  }
  const ProxyOptions& opts = server_.options();
  if (opts.peer_requests) {
    // Requests two parsers could read differently never reach policy.
    if (!canonicalize_target(ex)) return;
    if (const char* why = check_peer_headers(ex.head.headers, opts.http.headers_with_underscores)) {
      server_.events().on_connection_event(down_->peer_address(), "bad_request", why);
      label_with_peer(ex);
      respond_local(400, "bad_request", why, true);
      return;
    }
  }

  if (revoked_since_handshake()) {
    respond_local(403, "certificate_revoked",
                  "The client certificate was revoked after this connection was established.", true);
    return;
  }
  if (serve_well_known()) return;

  Verdict verdict = server_.authorizer().authorize(view_of(ex));
  ex.decision = verdict.decision;
  ex.reason = std::move(verdict.reason);
  ex.peer = std::move(verdict.peer);
  ex.grant = std::move(verdict.grant);
  ex.resource = std::move(verdict.resource);
  ex.entity_uri = std::move(verdict.entity_uri);
  if (!verdict.allow) {
    // A denied request's body is not read: close unless there is none.
    respond_local(verdict.status, verdict.code.c_str(), verdict.message,
                  verdict.close_connection || ex.head.body != http1::BodyKind::none,
                  verdict.extra_response_headers);
    return;
  }
  ex.upgrade = http1::is_websocket_upgrade(ex.head);  // before its Connection/Upgrade go
  if (opts.peer_requests && forwarding_lines_.empty()) {
    // The peer's address and scheme are the connection's: formatted once.
    append_forwarding_lines(forwarding_lines_, down_->peer_ip(), down_->tls() != nullptr);
  }
  std::string bytes = forwarded_request_head(ex.head, verdict, ex.target ? &*ex.target : nullptr, ex.request_id,
                                             forwarding_lines_, ex.upgrade);
  ex.pool = verdict.pool ? verdict.pool : &server_.pool();
  ex.fallbacks = std::move(verdict.fallbacks);
  if (ex.head.body == http1::BodyKind::none) {
    ex.retry_bytes = std::move(bytes);  // kept whole for a retry or a failover
    forward(ex.retry_bytes);
  } else {
    forward(bytes);
  }
  if (up_ && ex.head.expect_continue && ex.head.body != http1::BodyKind::none) {
    down_->write("HTTP/1.1 100 Continue\r\n\r\n");
  }
}

void ProxySession::flush_upstream() {
  if (up_out_.empty()) return;
  if (up_) {
    // A write can fail at once (the app reset the connection): the failure
    // reaches on_upstream_failed inside it, which clears up_.
    up_->write(up_out_);
    if (up_ && up_->above_high_watermark()) {
      down_->pause_reading(net::PauseReason::peer_backpressure);
      machine_.upstream_backpressure(true);
    }
  }
  up_out_.clear();
}

void ProxySession::forward(std::string_view head_bytes) {
  const auto& opts = server_.options();
  auto acquired = ex_->pool->acquire(this, ex_->head.method);
  if (!acquired) {
    server_.events().on_connection_event(down_->peer_address(), opts.unavailable_code, acquired.message());
    respond_local(502, opts.unavailable_code, opts.unavailable_message,
                  ex_->head.body != http1::BodyKind::none && !ex_->request_done);
    return;
  }
  up_ = *acquired;
  if (ex_->upgrade) up_->expect_upgrade();
  up_write(head_bytes.data(), head_bytes.size());
  machine_.forwarded(now(), up_->connecting());
}

void ProxySession::on_request_body(const char* data, size_t len) {
  Exchange& ex = *ex_;
  ex.bytes_in += len;
  if (ex.local || !up_) return;  // answered already: the body is dropped
  if (ex.head.body == http1::BodyKind::chunked) {
    http1::write_chunk(data, len, up_out_);
  } else {
    up_write(data, len);
  }
}

void ProxySession::on_request_complete() {
  Exchange& ex = *ex_;
  ex.request_done = true;
  machine_.request_complete(now());
  if (up_ && !ex.local) {
    if (ex.head.body == http1::BodyKind::chunked) http1::write_last_chunk(up_out_);
    up_->request_done();
  }
  pump_again_ = true;
}

void ProxySession::on_upstream_head(http1::ResponseHead&& head) {
  Exchange& ex = *ex_;
  ex.response_started = true;
  ex.status = head.status;
  machine_.response_started(now());
  if (head.status == 101 && ex.upgrade) {
    start_tunnel(std::move(head));
    return;
  }
  bool keep_alive = ex.head.keep_alive && !draining_ && !lifetime_exceeded() && !peer_eof_ &&
                    ex.head.version_minor >= 1;
  if (!keep_alive) ex.close_after = true;
  http1::remove_hop_by_hop(head.headers);
  bool streamed = head.body == http1::BodyKind::chunked || head.body == http1::BodyKind::until_close;
  bool chunked_ok = ex.head.version_minor >= 1;
  ex.chunked_out = !ex.head_request && streamed && chunked_ok;
  if (streamed && !chunked_ok) {
    keep_alive = false;  // HTTP/1.0: the close delimits the body
    ex.close_after = true;
  }
  std::string& bytes = scratch_buffer();
  http1::write_response_head(head, keep_alive, bytes, chunked_ok);
  down_->write(bytes);
}

void ProxySession::on_upstream_body(const char* data, size_t len) {
  Exchange& ex = *ex_;
  ex.bytes_out += len;
  if (ex.tunnel) {
    machine_.progress(now());
    down_->write(data, len);
    if (up_ && down_->above_high_watermark()) {
      up_->pause_reading();
      machine_.client_backpressure(true);
    }
    sync_timer();
    return;
  }
  // The response moves: idle_ms is a deadline on progress, not on the whole
  // exchange (a long download is not idle). A client that stops reading
  // stops this too (the app is paused behind it) and is cut at idle_ms.
  machine_.progress(now());
  if (ex.chunked_out) {
    std::string& frame = scratch_buffer();
    http1::write_chunk(data, len, frame);
    down_->write(frame);
  } else {
    down_->write(data, len);
  }
  if (up_ && down_->above_high_watermark()) {
    up_->pause_reading();
    machine_.client_backpressure(true);
  }
  sync_timer();
}

void ProxySession::on_upstream_complete() {
  Exchange& ex = *ex_;
  up_ = nullptr;  // the connection went back to the pool (or was closed)
  if (ex.tunnel) ex.close_after = true;  // the app closed the tunnel
  if (ex.chunked_out) {
    std::string last;
    http1::write_last_chunk(last);
    down_->write(last);
  }
  ex.response_done = true;
  if (!ex.request_done) ex.close_after = true;  // the app answered before the body ended
  pump();
}

void ProxySession::on_upstream_failed(UpstreamFailure failure, const std::string& reason,
                                        bool reused, bool got_bytes) {
  up_ = nullptr;
  Exchange& ex = *ex_;
  // A pooled keep-alive connection the app had already closed: retry a
  // body-less request once on a fresh connection, but only an idempotent
  // one (SPEC §5): the app may have acted on a POST before the connection
  // dropped, and it must never see it twice.
  if (failure == UpstreamFailure::closed_early && reused && !got_bytes && !ex.retried &&
      !ex.retry_bytes.empty() && http1::is_idempotent(ex.head.method)) {
    ex.retried = true;
    forward(ex.retry_bytes);
    flush_upstream();
    if (up_ && ex.request_done) up_->request_done();
    return;
  }
  server_.events().on_connection_event(down_->peer_address(), "upstream_failed", reason);
  // Egress failover: the next endpoint of the peer's manifest, when nothing
  // reached this one and the request can be sent again whole.
  if (failure == UpstreamFailure::connect_failed && !ex.fallbacks.empty() && !ex.retry_bytes.empty() &&
      !ex.response_started) {
    ex.pool = ex.fallbacks.front();
    ex.fallbacks.erase(ex.fallbacks.begin());
    forward(ex.retry_bytes);
    flush_upstream();
    if (up_ && ex.request_done) up_->request_done();
    return;
  }
  if (ex.response_started) {
    // Part of the response is out: the peer can only learn by the close.
    cut(Cut::upstream_failed);
    return;
  }
  const auto& opts = server_.options();
  if (failure == UpstreamFailure::timeout) {
    respond_local(504, "upstream_timeout", opts.timeout_message, !ex.request_done);
  } else if (failure == UpstreamFailure::identity_mismatch) {
    respond_local(502, "peer_identity_mismatch",
                  "The peer's certificate does not prove the identity of its manifest (URI SAN, pin or trust anchors).",
                  !ex.request_done);
  } else {
    respond_local(502, opts.unavailable_code,
                  failure == UpstreamFailure::bad_response ? opts.invalid_response_message : opts.unavailable_message,
                  !ex.request_done);
  }
}

void ProxySession::start_tunnel(http1::ResponseHead&& head) {
  Exchange& ex = *ex_;
  ex.tunnel = true;
  ex.close_after = true;  // the connection ends with the tunnel
  http1::remove_hop_by_hop(head.headers);
  std::string& bytes = scratch_buffer();
  http1::write_switching_protocols_head(head, bytes);
  down_->write(bytes);
  machine_.tunnel_started(now());
  // Bytes the client sent after its handshake are the tunnel's first.
  if (inpos_ < inbuf_.size()) {
    std::string early = inbuf_.substr(inpos_);
    inbuf_.clear();
    inpos_ = 0;
    tunnel_to_upstream(early.data(), early.size());
  }
  down_->resume_reading(net::PauseReason::input_backlog);
  sync_timer();
}

void ProxySession::tunnel_to_upstream(const char* data, size_t len) {
  Exchange& ex = *ex_;
  ex.bytes_in += len;
  machine_.progress(now());
  if (up_) {
    up_->write(data, len);  // may fail at once and clear up_ (see flush_upstream)
    if (up_ && up_->above_high_watermark()) {
      down_->pause_reading(net::PauseReason::peer_backpressure);
      machine_.upstream_backpressure(true);
    }
  }
  sync_timer();
}

void ProxySession::on_upstream_drained() {
  down_->resume_reading(net::PauseReason::peer_backpressure);
  machine_.upstream_backpressure(false);
  machine_.progress(now());
  sync_timer();
}

void ProxySession::on_upstream_connected() {
  machine_.upstream_connected(now());
  sync_timer();
}

void ProxySession::respond_local(int status, const char* code, const std::string& message,
                                   bool close, const std::string& extra_headers) {
  Exchange& ex = *ex_;
  if (ex.reason.empty() || ex.decision == base::Decision::allow) {
    ex.decision = status >= 500 ? base::Decision::error : base::Decision::deny;
    ex.reason = code;
  }
  bool closing = close || draining_ || peer_eof_;
  respond_local_bytes(status, http1::make_error_response(status, code, message, ex.request_id, closing, extra_headers),
                      closing);
}

void ProxySession::respond_local_bytes(int status, std::string bytes, bool close) {
  Exchange& ex = *ex_;
  up_out_.clear();
  if (up_) {
    up_->abandon();
    up_ = nullptr;
  }
  down_->resume_reading(net::PauseReason::peer_backpressure);
  machine_.answered_locally(now());
  ex.local = true;
  ex.response_started = true;
  ex.response_done = true;
  ex.status = status;
  if (close || draining_ || peer_eof_) ex.close_after = true;
  down_->write(bytes);
  pump_again_ = true;
  if (!in_pump_) pump();
}

bool ProxySession::revoked_since_handshake() {
  if (!down_->tls() || tls_generation_ == server_.tls_generation()) return false;
  const tls::TlsContext* current = server_.current_tls();
  if (!current || !current->bundle().crl()) return false;
  if (!tls::is_revoked(down_->tls()->peer(), current->bundle().crl())) return false;
  server_.events().on_connection_event(down_->peer_address(), "certificate_revoked",
                                       "closing a connection whose client certificate is now on the CRL");
  return true;
}

RequestView ProxySession::view_of(const Exchange& ex) const {
  static const tls::PeerIdentity kNoIdentity;  // plain (insecure) ingress
  const tls::PeerIdentity& peer = down_->tls() ? down_->tls()->peer() : kNoIdentity;
  return RequestView{peer, ex.head, down_->peer_ip(), ex.request_id, net::Loop::unix_ms(),
                     ex.target ? &*ex.target : nullptr};
}

bool ProxySession::canonicalize_target(Exchange& ex) {
  config::TargetResult r = config::canonicalize_target(ex.head.target, ex.head.method, server_.options().http.path_policy);
  if (r.status == config::TargetStatus::ok) {
    ex.target = std::move(r.target);
    return true;
  }
  // Never forwarded; the body, if any, is not read.
  label_with_peer(ex);
  const policy::Decision d = policy::refuse_target(r.status);
  respond_local(d.status, policy::to_string(d.code), target_refusal_message(d.message, r.detail),
                ex.head.body != http1::BodyKind::none);
  return false;
}

void ProxySession::label_with_peer(Exchange& ex) {
  RequestIdentity id = server_.authorizer().identify(view_of(ex));
  ex.peer = std::move(id.peer);
  ex.entity_uri = std::move(id.entity_uri);
}

bool ProxySession::serve_well_known() {
  Exchange& ex = *ex_;
  if (!ex.target) return false;
  const std::string_view path = ex.target->path();
  const std::shared_ptr<const std::string>* doc = path == "/.well-known/fedproxy-manifest.json" ? &server_.node_manifest()
                                                  : path == "/.well-known/fedproxy-bundle.json"  ? &server_.node_bundle()
                                                                                                 : nullptr;
  if (!doc || !*doc) return false;
  if (ex.head.method != "GET" && ex.head.method != "HEAD") return false;
  const std::string& body = **doc;
  bool close = ex.head.body != http1::BodyKind::none || !ex.head.keep_alive;
  http1::LocalResponse r;
  r.body = body;
  r.request_id = ex.request_id;
  r.close = close;
  r.head_only = ex.head.method == "HEAD";
  std::string out;
  http1::write_local_response(r, out);
  ex.decision = base::Decision::allow;
  ex.reason = doc == &server_.node_manifest() ? "node_manifest" : "node_bundle";
  // Not authorized (any peer the CA vouches for may read the manifest).
  label_with_peer(ex);
  respond_local_bytes(200, std::move(out), close);
  return true;
}

void ProxySession::on_parse_error() {
  int status = 400;
  const char* code = "bad_request";
  const char* message = "The request is malformed or ambiguous.";
  switch (parser_.error()) {
    case http1::ParseError::uri_too_long:
      status = 414;
      code = "uri_too_long";
      message = "The request line is too long.";
      break;
    case http1::ParseError::headers_too_large:
      status = 431;
      code = "headers_too_large";
      message = "The request headers are too large or too many.";
      break;
    default:
      break;
  }
  server_.events().on_connection_event(down_->peer_address(), code, parser_.error_detail());
  if (ex_ && ex_->response_started) {
    cut(Cut::malformed);  // the response is already on its way: just stop
    return;
  }
  if (!ex_) {
    ex_ = std::make_unique<Exchange>();
    ex_->start_ns = net::Loop::hrtime_ns();
    ex_->request_id = new_request_id();
    machine_.head_read(now());  // a refused head is audited too
  }
  ex_->decision = base::Decision::error;
  ex_->reason = code;
  respond_local(status, code, message, true);
}

void ProxySession::finish_exchange() {
  Exchange& ex = *ex_;
  ++requests_;
  const auto& opts = server_.options();
  bool close = ex.close_after || !ex.head.keep_alive || draining_ || peer_eof_ || lifetime_exceeded() ||
               (opts.max_requests_per_conn && requests_ >= opts.max_requests_per_conn);
  if (!close) machine_.set_timeouts(server_.phase_timeouts());  // a reload reaches the idle deadline too
  if (auto owed = machine_.exchange_done(now(), outcome_of_response(), !close)) report(*owed);
  ex_.reset();
  if (close) {
    finish(true);
    return;
  }
  parser_.resume();
}

base::Outcome ProxySession::outcome_of_response() const {
  const Exchange& ex = *ex_;
  if (!ex.local || ex.decision == base::Decision::allow) return base::Outcome::completed;  // the app's (or our manifest) answer
  if (ex.status == 504) return base::Outcome::upstream_timeout;
  if (ex.status == 502) return base::Outcome::upstream_error;
  return base::Outcome::denied;  // refused by policy, limits or the parser
}

void ProxySession::report(base::Outcome outcome) {
  Exchange& ex = *ex_;
  RequestRecord rec;
  rec.direction = to_string(server_.options().direction);
  rec.request_id = ex.request_id;
  rec.peer_address = down_->peer_address();
  rec.peer = down_->tls() ? &down_->tls()->peer() : nullptr;
  rec.method = ex.head.method;
  rec.target = ex.target ? std::string_view(ex.target->text) : std::string_view(ex.head.target);
  rec.status = ex.status;
  rec.decision = ex.decision;
  rec.reason = std::move(ex.reason);
  rec.outcome = outcome;
  rec.peer_slug = std::move(ex.peer);
  rec.grant = std::move(ex.grant);
  rec.resource = std::move(ex.resource);
  rec.entity_uri = std::move(ex.entity_uri);
  rec.bytes_in = ex.bytes_in;
  rec.bytes_out = ex.bytes_out;
  rec.duration_ns = net::Loop::hrtime_ns() - ex.start_ns;
  rec.duration_ms = static_cast<double>(rec.duration_ns) / 1e6;
  server_.events().on_request_done(rec);
}

bool ProxySession::lifetime_exceeded() const {
  uint64_t limit = server_.options().max_conn_lifetime_ms;
  return limit && server_.loop().now_ms() - created_ms_ >= limit;
}

void ProxySession::sync_timer() {
  if (finished_) return;
  std::optional<uint64_t> deadline = machine_.deadline();
  if (!deadline) {
    timer_.stop();
    return;
  }
  uint64_t t = now();
  timer_.start(*deadline > t ? *deadline - t : 0);
}

void ProxySession::on_timeout() {
  if (finished_) return;
  std::optional<uint64_t> deadline = machine_.deadline();
  if (deadline && *deadline > now()) {  // moved since the timer was armed
    sync_timer();
    return;
  }
  const Phase phase = machine_.phase();
  if (phase == Phase::handshake) {
    server_.events().on_handshake_failed(down_->peer_address(), "handshake timed out");
  } else if (phase == Phase::read_head) {
    server_.events().on_connection_event(down_->peer_address(), "header_timeout",
                                         "request headers not complete within header_ms");
  } else if (ex_) {
    server_.events().on_connection_event(
        down_->peer_address(), "timeout",
        std::string("no progress in phase ") + to_string(phase) + ", waiting on the " +
            to_string(machine_.waiting_on()));
  }
  if (auto owed = machine_.expired(); owed && ex_) report(*owed);
  finish(false);
}

void ProxySession::cut(Cut cause) {
  if (finished_) return;
  if (auto owed = machine_.cut(cause); owed && ex_) report(*owed);
  finish(false);
}

void ProxySession::begin_drain() {
  draining_ = true;
  if (!ex_ && !parser_.in_message()) {
    machine_.close();
    finish(true);
  }
}

void ProxySession::close_now() { cut(Cut::shutdown); }

void ProxySession::finish(bool graceful) {
  if (finished_) return;
  // Every way out passes here: a record still owed is written now, so no
  // exchange that was read ends unaudited.
  if (auto owed = machine_.cut(Cut::client_error); owed && ex_) report(*owed);
  finished_ = true;
  timer_.stop();
  if (up_) {
    up_->abandon();
    up_ = nullptr;
  }
  if (graceful) {
    net::Transport::close_gracefully_and_release(std::move(down_));
  } else {
    down_->close();
  }
  server_.session_gone(this);
  server_.loop().defer_delete(this);
}

}  // namespace fedproxy::core
