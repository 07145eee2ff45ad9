#include "proxy/net/transport.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>

#include <uv.h>

#include "proxy/net/address.hpp"
#include "proxy/net/resolver.hpp"

namespace fedproxy::net {

namespace {
// After FIN, how long we keep reading (and discarding) before the final close,
// so that a peer still sending does not get our last response reset away.
constexpr uint64_t kLingerMs = 2000;
// How long a graceful close may wait for a slow reader to take queued bytes.
constexpr uint64_t kGracefulFlushMs = 30000;
// After a failed TLS handshake: how long the socket stays open for our alert
// to leave and the peer to read it (see Transport::linger_after_alert).
constexpr uint64_t kAlertLingerMs = 1000;

struct WriteReq {
  uv_write_t req;
  std::string data;
};
}  // namespace

// All libuv memory of one transport. Freed when both handles have closed.
struct Transport::Handles {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } s;
  uv_timer_t linger;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  Transport* owner = nullptr;
  Loop* loop = nullptr;
  int open = 0;
  bool is_pipe = false;
  // Detached from its Transport after a failed handshake: FIN sent after the
  // alert, input discarded, closed on the peer's EOF or the linger timer.
  bool orphan = false;
  bool orphan_closing = false;
  // Plaintext written before the connection (or TLS handshake) was ready.
  std::string early;
};

namespace {

Transport::Handles* handles_of(uv_handle_t* h) { return static_cast<Transport::Handles*>(h->data); }

void on_handle_closed(uv_handle_t* h) {
  auto* hs = handles_of(h);
  if (--hs->open == 0) delete hs;
}

void alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* hs = handles_of(h);
  buf->base = hs->loop->read_buffer();
  buf->len = Loop::kReadBufferSize;
}

void close_orphan(Transport::Handles* hs) {
  if (hs->orphan_closing) return;
  hs->orphan_closing = true;
  uv_close(&hs->s.handle, on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&hs->linger), on_handle_closed);
}

void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* hs = handles_of(reinterpret_cast<uv_handle_t*>(s));
  if (hs->owner) {
    hs->owner->on_read(nread, buf->base);
  } else if (hs->orphan && nread < 0) {
    close_orphan(hs);  // the peer closed (or reset): nothing left to wait for
  }
}

void write_cb(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<WriteReq*>(req);
  auto* hs = handles_of(reinterpret_cast<uv_handle_t*>(req->handle));
  size_t n = w->data.size();
  delete w;
  if (hs->owner) hs->owner->on_write_done(n, status);
}

void connect_cb(uv_connect_t* req, int status) {
  auto* hs = handles_of(reinterpret_cast<uv_handle_t*>(req->handle));
  if (hs->owner) hs->owner->on_connect_result(status);
}

void shutdown_cb(uv_shutdown_t* req, int) {
  auto* hs = handles_of(reinterpret_cast<uv_handle_t*>(req->handle));
  if (hs->owner) hs->owner->on_shutdown_done();
}

void linger_cb(uv_timer_t* t) {
  auto* hs = static_cast<Transport::Handles*>(t->data);
  if (hs->owner) {
    hs->owner->on_linger_timeout();
  } else if (hs->orphan) {
    close_orphan(hs);
  }
}

Transport::Handles* new_handles(Loop& loop, bool is_pipe) {
  auto* hs = new Transport::Handles;
  hs->loop = &loop;
  hs->is_pipe = is_pipe;
  if (is_pipe) {
    uv_pipe_init(loop.raw(), &hs->s.pipe, 0);
  } else {
    uv_tcp_init(loop.raw(), &hs->s.tcp);
  }
  hs->s.handle.data = hs;
  uv_timer_init(loop.raw(), &hs->linger);
  hs->linger.data = hs;
  hs->open = 2;
  return hs;
}

}  // namespace

Transport::Transport(Loop& loop, Handles* handles) : loop_(loop), h_(handles) { h_->owner = this; }

Transport::~Transport() { close(); }

std::unique_ptr<Transport> Transport::adopt(Loop& loop, Handles* handles) {
  std::unique_ptr<Transport> t(new Transport(loop, handles));
  t->capture_peer_address();
  if (!handles->is_pipe) uv_tcp_nodelay(&handles->s.tcp, 1);
  return t;
}

// Used by Listener: allocate handles for an accepted connection.
Transport::Handles* new_accept_handles(Loop& loop, bool is_pipe) { return new_handles(loop, is_pipe); }
void free_unadopted_handles(Transport::Handles* hs) {
  uv_close(&hs->s.handle, on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&hs->linger), on_handle_closed);
}
uv_stream_t* stream_of(Transport::Handles* hs) { return &hs->s.stream; }

std::unique_ptr<Transport> Transport::connect(Loop& loop, const config::Endpoint& endpoint,
                                              TransportHandler* handler,
                                              std::unique_ptr<tls::TlsEngine> tls,
                                              std::string* error) {
  bool is_pipe = endpoint.kind == config::Endpoint::Kind::unix_socket;
  Handles* hs = new_handles(loop, is_pipe);
  std::unique_ptr<Transport> t(new Transport(loop, hs));
  t->tls_ = std::move(tls);
  t->peer_address_ = endpoint.text;
  if (is_pipe) {
    uv_pipe_connect(&hs->connect_req, &hs->s.pipe, endpoint.path.c_str(), connect_cb);
    t->handler_ = handler;
    return t;
  }
  if (!is_ip_literal(endpoint.host)) {
    // A host name: connect to a cached address, or ask the resolver and
    // connect when it answers (the caller's connect deadline runs meanwhile).
    t->host_ = endpoint.host;
    t->port_ = endpoint.port;
    Resolver& resolver = loop.resolver();
    if (const auto* addresses = resolver.fresh(endpoint.host)) {
      t->addresses_ = *addresses;
      if (!t->connect_next_address(error)) return nullptr;
      t->handler_ = handler;
      return t;
    }
    Transport* raw = t.get();
    t->lookup_id_ = resolver.resolve(endpoint.host, [raw](const Resolution& r) { raw->on_resolved(r); });
    if (t->lookup_id_ == 0) {
      *error = "connect to " + endpoint.text + ": cannot resolve " + endpoint.host + ": the loop is closing";
      return nullptr;
    }
    t->handler_ = handler;
    return t;
  }
  sockaddr_storage addr{};
  if (!to_sockaddr(endpoint, &addr, error)) return nullptr;  // destructor closes handles
  int rc = uv_tcp_connect(&hs->connect_req, &hs->s.tcp, reinterpret_cast<const sockaddr*>(&addr),
                          connect_cb);
  if (rc != 0) {
    *error = std::string("connect to ") + endpoint.text + ": " + uv_strerror(rc);
    return nullptr;
  }
  t->handler_ = handler;
  return t;
}

// The next address of the name, in the resolver's order, on fresh handles
// when an earlier attempt used the current ones. False (with *error: every
// address tried and why) when none is left that could be started.
bool Transport::connect_next_address(std::string* error) {
  while (next_address_ < addresses_.size()) {
    const std::string& ip = addresses_[next_address_++];
    if (next_address_ > 1) renew_handles();
    config::Endpoint at;
    at.host = ip;
    at.port = port_;
    at.text = peer_address_;
    sockaddr_storage addr{};
    std::string why;
    if (to_sockaddr(at, &addr, &why)) {
      int rc = uv_tcp_connect(&h_->connect_req, &h_->s.tcp, reinterpret_cast<const sockaddr*>(&addr), connect_cb);
      if (rc == 0) return true;
      why = uv_strerror(rc);
    }
    note_attempt(ip, why);
  }
  *error = "connect to " + peer_address_ + ": " + attempts_;
  return false;
}

void Transport::note_attempt(const std::string& ip, const std::string& why) {
  if (!attempts_.empty()) attempts_ += "; ";
  attempts_ += ip + ": " + why;
}

// A new TCP handle (and linger timer) for the next address: a handle whose
// connect failed cannot connect again. The old ones close and free themselves.
void Transport::renew_handles() {
  Handles* old = h_;
  Handles* hs = new_handles(loop_, false);
  hs->early.swap(old->early);
  old->owner = nullptr;
  uv_close(&old->s.handle, on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&old->linger), on_handle_closed);
  h_ = hs;
  hs->owner = this;
  reading_ = false;
}

void Transport::on_resolved(const Resolution& r) {
  lookup_id_ = 0;
  if (closed_) return;
  if (!r.ok) {
    fail("connect to " + peer_address_ + ": " + r.error);
    return;
  }
  addresses_ = r.addresses;
  std::string error;
  if (!connect_next_address(&error)) {
    loop_.resolver().invalidate(host_);
    fail(error);
  }
}

void Transport::capture_peer_address() {
  if (h_->is_pipe) {
    peer_address_ = "unix";
    peer_ip_ = "127.0.0.1";  // a local socket is a loopback peer
    return;
  }
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&h_->s.tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    peer_address_ = format_sockaddr(reinterpret_cast<const sockaddr*>(&ss), &peer_ip_);
  }
}

bool Transport::local_address(std::string* ip, uint16_t* port) const {
  if (closed_ || h_->is_pipe) return false;
  sockaddr_storage ss{};
  int len = sizeof(ss);
  if (uv_tcp_getsockname(&h_->s.tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  format_sockaddr(reinterpret_cast<const sockaddr*>(&ss), ip);
  *port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  return true;
}

void Transport::start(std::unique_ptr<tls::TlsEngine> tls) {
  tls_ = std::move(tls);
  update_reading();
  if (!tls_) {
    connected_ = true;
    if (handler_) handler_->on_transport_connected();
  }
}

void Transport::on_connect_result(int status) {
  if (closed_) return;
  if (status < 0) {
    if (host_.empty()) {
      fail(std::string("connect to ") + peer_address_ + ": " + uv_strerror(status));
      return;
    }
    // A name: its next address, within the same connect deadline.
    note_attempt(addresses_[next_address_ - 1], uv_strerror(status));
    std::string error;
    if (connect_next_address(&error)) return;
    // Every address failed; the name may have moved: the next connect looks it up again.
    loop_.resolver().invalidate(host_);
    fail(error);
    return;
  }
  // A later address answered: later connects try it first.
  if (next_address_ > 1) loop_.resolver().prefer(host_, addresses_[next_address_ - 1]);
  capture_peer_address();
  if (!h_->is_pipe) uv_tcp_nodelay(&h_->s.tcp, 1);
  update_reading();
  if (tls_) {
    auto st = tls_->handshake();  // client speaks first
    flush_tls();
    if (st == tls::TlsEngine::Status::error) fail_tls();
    return;
  }
  if (handler_) handler_->on_transport_connected();  // see on_read: same ordering rule
  if (closed_) return;
  connected_ = true;
  flush_early();
}

void Transport::flush_early() {
  if (h_->early.empty()) return;
  std::string early;
  early.swap(h_->early);
  queue_shrank(early.size());
  write(early.data(), early.size());
  // Often all of it leaves at once by uv_try_write, with no write callback:
  // the writer paused by the early queue must still hear the edge.
  maybe_drained();
}

// Every change of queued_ goes through queue_grew/queue_shrank, and every
// place where it may have shrunk below the low watermark ends in
// maybe_drained(): a writer paused above the high watermark hears the
// "drained" edge whichever way the bytes left (write callback, synchronous
// try_write, the early buffer flushed at connect).
void Transport::queue_grew(size_t n) {
  queued_ += n;
  if (queued_ > kHighWatermark) was_above_high_ = true;
}

void Transport::queue_shrank(size_t n) { queued_ -= n; }

void Transport::maybe_drained() {
  if (closed_ || graceful_ || !was_above_high_ || queued_ > kLowWatermark) return;
  was_above_high_ = false;
  if (handler_) handler_->on_transport_drained();
}

void Transport::on_read(ssize_t nread, const char* data) {
  if (closed_ || nread == 0) return;
  if (nread < 0) {
    if (graceful_) {
      close();
      return;
    }
    if (nread == UV_EOF) {
      uv_read_stop(&h_->s.stream);
      reading_ = false;
      if (tls_ && !tls_->handshake_done()) {
        fail("peer_closed: peer closed the connection during the handshake");
        return;
      }
      if (handler_) handler_->on_transport_eof();
      return;
    }
    fail(uv_strerror(static_cast<int>(nread)));
    return;
  }
  bytes_in_ += static_cast<uint64_t>(nread);
  if (graceful_) return;  // lingering: discard
  if (!tls_) {
    handler_->on_transport_data(data, static_cast<size_t>(nread));
    return;
  }
  size_t cipher_len = static_cast<size_t>(nread);
  if (!tls_->handshake_done()) {
    tls_->feed(data, cipher_len);
    cipher_len = 0;  // in the engine now
    auto st = tls_->handshake();
    flush_tls();
    if (closed_) return;
    if (st == tls::TlsEngine::Status::error) {
      fail_tls();
      return;
    }
    if (!tls_->handshake_done()) return;
    // The handler checks the peer's identity first: bytes queued before the
    // handshake must not reach a peer it is about to reject. Writes made
    // during the callback queue behind the earlier ones (connected_ is still
    // false), so order is kept.
    handler_->on_transport_connected();
    if (closed_ || graceful_) return;
    connected_ = true;
    flush_early();
  }
  // The first request often arrives together with the client's Finished:
  // read in the same turn, until mbedTLS wants more ciphertext. Plaintext
  // goes straight into a per-thread buffer the size of a whole socket read
  // (plus a record), so one pass nearly always takes it all.
  constexpr size_t kPlainCap = Loop::kReadBufferSize + 16 * 1024 + 256;
  thread_local std::unique_ptr<char[]> plain(new char[kPlainCap]);
  tls::TlsEngine::Status st;
  for (;;) {
    size_t n = 0;
    st = tls_->read_from(data, cipher_len, plain.get(), kPlainCap, &n);
    cipher_len = 0;
    flush_tls();
    if (closed_) return;
    if (n > 0) {
      handler_->on_transport_data(plain.get(), n);
      if (closed_ || graceful_) return;
    }
    if (st != tls::TlsEngine::Status::ok || n < kPlainCap) break;
  }
  if (st == tls::TlsEngine::Status::closed) {
    uv_read_stop(&h_->s.stream);
    reading_ = false;
    handler_->on_transport_eof();
  } else if (st == tls::TlsEngine::Status::error) {
    fail_tls();
  }
}

void Transport::write(const char* data, size_t len) {
  if (closed_ || shutdown_sent_ || len == 0) return;
  if (!connected_) {
    h_->early.append(data, len);
    queue_grew(len);
    return;
  }
  if (graceful_) {  // closing: nothing is gathered any more
    send_now(data, len);
    return;
  }
  if (len >= kDirectWriteMin) {
    write_large(data, len);
    return;
  }
  corked_.append(data, len);
  if (corked_.size() >= kCorkLimit) {
    send_corked(whole_records(corked_.size()));
  }
  if (!corked_.empty() && !flush_scheduled_) {
    flush_scheduled_ = true;
    loop_.schedule_flush(this);
  }
}

// A streamed body's pieces leave from the caller's memory. With TLS the cork
// is first topped up to a record boundary and sealed, then the piece's whole
// records are sealed in place, and only its tail (less than a record) waits
// in the cork for the next piece; all of it leaves in one syscall. Plain, the
// cork and the piece leave together in one writev.
void Transport::write_large(const char* data, size_t len) {
  if (!tls_) {
    send_plain(corked_.data(), corked_.size(), data, len);
    corked_.clear();
    return;
  }
  const size_t record = tls_->max_record_payload();
  if (size_t partial = corked_.size() % record; partial != 0) {
    size_t fill = std::min(len, record - partial);
    corked_.append(data, fill);
    data += fill;
    len -= fill;
  }
  if (!corked_.empty()) {
    if (!seal(corked_.data(), corked_.size())) return;
    corked_.clear();
  }
  size_t whole = len - len % record;
  if (whole > 0 && !seal(data, whole)) return;
  flush_tls();
  if (closed_) return;
  data += whole;
  len -= whole;
  if (len == 0) return;
  corked_.append(data, len);
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    loop_.schedule_flush(this);
  }
}

bool Transport::seal(const char* data, size_t len) {
  if (tls_->write(data, len) != tls::TlsEngine::Status::ok) {
    fail_tls();
    return false;
  }
  return true;
}

// With TLS, a streamed body goes out in full records; the tail of a piece
// waits (at most until the end of the loop iteration) for the next one, so a
// 64 KiB read does not end in a record of a few bytes.
size_t Transport::whole_records(size_t n) const {
  if (!tls_) return n;
  const size_t record = tls_->max_record_payload();
  return n < record ? n : n - n % record;
}

void Transport::send_corked(size_t n) {
  if (n == 0 || closed_) return;
  if (n == corked_.size()) {
    std::string out;
    out.swap(corked_);
    send_now(out.data(), out.size());
    // Reuse the capacity next time (bounded: the cork never grows past the limit much).
    if (corked_.empty() && out.capacity() <= 2 * kCorkLimit) {
      out.clear();
      corked_.swap(out);
    }
    return;
  }
  std::string out = corked_.substr(0, n);
  corked_.erase(0, n);
  send_now(out.data(), out.size());
}

void Transport::flush_scheduled() {
  flush_scheduled_ = false;  // the loop took us off its list: no search
  send_corked(corked_.size());
}

void Transport::flush_now() {
  if (flush_scheduled_) {
    flush_scheduled_ = false;
    loop_.cancel_flush(this);
  }
  send_corked(corked_.size());
}

void Transport::send_now(const char* data, size_t len) {
  if (tls_) {
    if (!seal(data, len)) return;
    flush_tls();
    return;
  }
  send_plain(nullptr, 0, data, len);
}

void Transport::send_plain(const char* a, size_t alen, const char* b, size_t blen) {
  if (alen + blen == 0 || closed_) return;
  // Try the socket directly first; queue only what it did not take.
  if (queued_ == 0) {
    uv_buf_t bufs[2] = {uv_buf_init(const_cast<char*>(a), static_cast<unsigned>(alen)),
                        uv_buf_init(const_cast<char*>(b), static_cast<unsigned>(blen))};
    uv_buf_t* first = alen ? bufs : bufs + 1;
    int n = uv_try_write(&h_->s.stream, first, alen ? 2 : 1);
    if (n > 0) {
      bytes_out_ += static_cast<uint64_t>(n);
      size_t took = static_cast<size_t>(n);
      size_t from_a = std::min(took, alen);
      a += from_a;
      alen -= from_a;
      took -= from_a;
      b += took;
      blen -= took;
    } else if (n < 0 && n != UV_EAGAIN) {
      fail(std::string("write: ") + uv_strerror(n));
      return;
    }
    if (alen + blen == 0) return;
  }
  std::string rest;
  rest.reserve(alen + blen);
  rest.append(a, alen);
  rest.append(b, blen);
  raw_write(std::move(rest));
}

void Transport::flush_tls() {
  if (!tls_ || !tls_->has_output() || closed_) return;
  if (queued_ == 0) {
    // Straight from the engine's buffer, which keeps its capacity.
    std::string_view out = tls_->output();
    uv_buf_t buf = uv_buf_init(const_cast<char*>(out.data()), static_cast<unsigned>(out.size()));
    int n = uv_try_write(&h_->s.stream, &buf, 1);
    if (n > 0) {
      bytes_out_ += static_cast<uint64_t>(n);
      tls_->consume_output(static_cast<size_t>(n));
      if (!tls_->has_output()) return;
    } else if (n < 0 && n != UV_EAGAIN) {
      fail(std::string("write: ") + uv_strerror(n));
      return;
    }
  }
  raw_write(tls_->take_output());
}

void Transport::raw_write(std::string&& bytes) {
  if (closed_ || bytes.empty()) return;
  auto* w = new WriteReq;
  w->data = std::move(bytes);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  queue_grew(w->data.size());
  int rc = uv_write(&w->req, &h_->s.stream, &buf, 1, write_cb);
  if (rc != 0) {
    queue_shrank(w->data.size());
    delete w;
    fail(std::string("write: ") + uv_strerror(rc));
    return;
  }
}

void Transport::on_write_done(size_t bytes, int status) {
  queue_shrank(bytes);
  if (closed_) return;
  if (status < 0) {
    fail(std::string("write: ") + uv_strerror(status));
    return;
  }
  bytes_out_ += bytes;
  if (graceful_) {
    maybe_finish_graceful();
    return;
  }
  maybe_drained();
}

void Transport::pause_reading(PauseReason reason) {
  pause_mask_ |= static_cast<uint32_t>(reason);
  update_reading();
}

void Transport::resume_reading(PauseReason reason) {
  pause_mask_ &= ~static_cast<uint32_t>(reason);
  update_reading();
}

void Transport::update_reading() {
  if (closed_) return;
  bool want = graceful_ || pause_mask_ == 0;
  if (want && !reading_) {
    if (uv_read_start(&h_->s.stream, alloc_cb, read_cb) == 0) reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(&h_->s.stream);
    reading_ = false;
  }
}

void Transport::close_gracefully() {
  if (closed_ || graceful_) return;
  handler_ = nullptr;  // no callbacks from here on, even if the flush fails
  flush_now();         // what was written before the close goes first
  if (closed_) return;
  graceful_ = true;
  if (!connected_) {
    close();
    return;
  }
  if (tls_ && tls_->handshake_done()) {
    tls_->close_notify();
    flush_tls();
    if (closed_) return;
  }
  update_reading();  // keep draining the peer while we flush
  uv_timer_start(&h_->linger, linger_cb, kGracefulFlushMs, 0);
  maybe_finish_graceful();
}

void Transport::maybe_finish_graceful() {
  if (!graceful_ || closed_ || shutdown_sent_ || queued_ > 0) return;
  shutdown_sent_ = true;
  if (uv_shutdown(&h_->shutdown_req, &h_->s.stream, shutdown_cb) != 0) {
    close();
    return;
  }
  uv_timer_start(&h_->linger, linger_cb, kLingerMs, 0);
}

void Transport::on_shutdown_done() {}

void Transport::on_linger_timeout() { close(); }

void Transport::close_gracefully_and_release(std::unique_ptr<Transport> transport) {
  if (!transport) return;
  Transport* t = transport.release();
  t->self_owned_ = true;
  if (t->closed_) {
    t->loop_.defer_delete(t);
    return;
  }
  t->close_gracefully();  // close() schedules the delete
}

void Transport::close() {
  if (closed_) return;
  handler_ = nullptr;  // no callbacks from here on, even if the flush fails
  // Best effort, as before write coalescing: bytes written just before an
  // abrupt close still get one try at the socket.
  if (connected_ && !corked_.empty()) {
    std::string out;
    out.swap(corked_);
    send_now(out.data(), out.size());
    if (closed_) return;  // send_now failed and closed
  }
  if (flush_scheduled_) {
    flush_scheduled_ = false;
    loop_.cancel_flush(this);
  }
  closed_ = true;
  handler_ = nullptr;
  if (lookup_id_ != 0) {
    loop_.resolver().cancel(lookup_id_);
    lookup_id_ = 0;
  }
  h_->owner = nullptr;  // from here on libuv callbacks do not reach this object
  uv_close(&h_->s.handle, on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->linger), on_handle_closed);
  if (self_owned_) loop_.defer_delete(this);
}

// A failed TLS session: the reason is "<code>: <detail>" (code from
// tls::kFailureCodes, the label of "handshake failures by reason").
void Transport::fail_tls() {
  if (closed_) return;
  std::string reason = std::string(tls_->error_code()) + ": " + tls_->error_reason();
  flush_tls();  // the engine's last words (its alert) go out first
  if (closed_) return;
  if (tls_->handshake_done() || tls_->alert_sent() < 0) {
    fail(reason);
    return;
  }
  TransportHandler* handler = handler_;
  linger_after_alert();
  if (handler) handler->on_transport_error(reason);
}

// Closing at once would lose the alert we just wrote: libuv cancels a queued
// write, and a close with unread input (the client's request often follows
// its Finished) makes the kernel send a reset, which can destroy the alert
// in flight before the peer reads it. So the socket is handed to the loop on
// its own: FIN once the alert is written, input read and discarded, closed
// on the peer's EOF or after kAlertLingerMs. For the owner the transport is
// closed now (no callbacks, close() is a no-op).
void Transport::linger_after_alert() {
  if (flush_scheduled_) {
    flush_scheduled_ = false;
    loop_.cancel_flush(this);
  }
  closed_ = true;
  handler_ = nullptr;
  Handles* hs = h_;
  hs->owner = nullptr;
  hs->orphan = true;
  if (uv_shutdown(&hs->shutdown_req, &hs->s.stream, shutdown_cb) != 0) {
    close_orphan(hs);
  } else {
    if (!reading_) uv_read_start(&hs->s.stream, alloc_cb, read_cb);
    reading_ = true;
    uv_timer_start(&hs->linger, linger_cb, kAlertLingerMs, 0);
  }
  if (self_owned_) loop_.defer_delete(this);
}

void Transport::fail(const std::string& reason) {
  if (closed_) return;
  TransportHandler* handler = handler_;
  close();
  if (handler) handler->on_transport_error(reason);
}

}  // namespace fedproxy::net
