// A byte-stream transport over a libuv stream (TCP or unix socket), with
// optional TLS layered on top by a TlsEngine. Session code holds a Transport
// and never knows whether bytes are encrypted.
//
// Ownership: the Transport is a plain C++ object owned by its session. The uv
// handles live in a separately allocated block that the close callbacks free,
// so destroying a Transport at any loop boundary is safe; every callback is
// disarmed first. Write requests own their buffers and are freed in the write
// callback (which libuv still calls, with UV_ECANCELED, after uv_close).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::net {

struct Resolution;

class TransportHandler {
 public:
  // TCP connect finished (client) or TLS handshake completed.
  virtual void on_transport_connected() = 0;
  // Plaintext received.
  virtual void on_transport_data(const char* data, size_t len) = 0;
  // The peer finished sending (FIN or close_notify). The transport stays open
  // for writing; the handler decides when to close.
  virtual void on_transport_eof() = 0;
  // Fatal error (connect refused, reset, TLS failure). The transport is
  // already closed when this is called.
  virtual void on_transport_error(const std::string& reason) = 0;
  // Queued output fell to the low watermark after being above the high one.
  virtual void on_transport_drained() = 0;

 protected:
  ~TransportHandler() = default;
};

// Why reading is paused; reading resumes only when no reason is left.
enum class PauseReason : uint32_t {
  peer_backpressure = 1,  // the other leg's write queue is full
  input_backlog = 2,      // unparsed input waits (pipelining)
  not_wanted = 4,         // the session does not want data now
};

class Transport final : public Deletable, public Flushable {
 public:
  static constexpr size_t kHighWatermark = 256 * 1024;
  static constexpr size_t kLowWatermark = 64 * 1024;

  ~Transport() override;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Start a client connection to endpoint; the handler later hears
  // on_transport_connected() (after the TLS handshake when tls is given) or
  // on_transport_error(). An immediate failure returns nullptr with *error set
  // and calls no handler. A TCP endpoint whose host is a name (not an IP
  // literal or "localhost") is resolved first by the loop's Resolver, never
  // blocking; a failed lookup is an on_transport_error naming the host and
  // the resolver's error. Its addresses are tried in order until one
  // connects; when none does, the cached name is invalidated.
  static std::unique_ptr<Transport> connect(Loop& loop, const config::Endpoint& endpoint,
                                            TransportHandler* handler,
                                            std::unique_ptr<tls::TlsEngine> tls,
                                            std::string* error);

  void set_handler(TransportHandler* handler) { handler_ = handler; }
  // Server side: begin reading (and, with TLS, the handshake).
  void start(std::unique_ptr<tls::TlsEngine> tls);

  // Written at the end of the loop iteration, together with every other
  // write of the same iteration (one syscall, one TLS record), or at once
  // when kCorkLimit bytes are gathered. Pieces of kDirectWriteMin bytes or
  // more are not copied into the cork: they leave at once, behind what is
  // corked (see write_large). Closing flushes first.
  void write(const char* data, size_t len);
  void write(const std::string& s) { write(s.data(), s.size()); }
  static constexpr size_t kCorkLimit = 64 * 1024;
  static constexpr size_t kDirectWriteMin = 16 * 1024;
  void flush_now();
  void flush_scheduled() override;
  size_t queued_bytes() const { return queued_; }
  bool above_high_watermark() const { return queued_ > kHighWatermark; }

  void pause_reading(PauseReason reason);
  void resume_reading(PauseReason reason);

  // Flush what is queued, send close_notify (TLS) and FIN, wait briefly for
  // the peer to close (so our last bytes are not lost to a reset), then
  // close. No further handler callbacks.
  void close_gracefully();
  // Graceful close that outlives the owner: the transport deletes itself once
  // its handles are closed (used when a session ends before its last bytes
  // are flushed).
  static void close_gracefully_and_release(std::unique_ptr<Transport> transport);
  // Close at once. No further handler callbacks.
  void close();
  bool is_closed() const { return closed_; }
  bool is_open() const { return !closed_ && !graceful_; }

  const std::string& peer_address() const { return peer_address_; }
  const std::string& peer_ip() const { return peer_ip_; }
  // TCP: the address the peer connected to (our side; on a wildcard listener
  // the interface's address). One getsockname per call: asked by the admin
  // listener, not on the data path. False for a unix socket or a closed one.
  bool local_address(std::string* ip, uint16_t* port) const;
  tls::TlsEngine* tls() const { return tls_.get(); }
  // The host name is still being resolved (no TCP connect started yet).
  bool resolving() const { return lookup_id_ != 0; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

  // Internal (libuv trampolines).
  struct Handles;
  void on_connect_result(int status);
  void on_read(ssize_t nread, const char* data);
  void on_write_done(size_t bytes, int status);
  void on_shutdown_done();
  void on_linger_timeout();
  static std::unique_ptr<Transport> adopt(Loop& loop, Handles* handles);
  Handles* handles() { return h_; }
  Loop& loop() { return loop_; }

 private:
  Transport(Loop& loop, Handles* handles);
  void raw_write(std::string&& bytes);
  void send_now(const char* data, size_t len);  // encrypt (TLS) and write
  void write_large(const char* data, size_t len);
  // Plain: a then b in one writev when nothing is queued; the rest is queued.
  void send_plain(const char* a, size_t alen, const char* b, size_t blen);
  bool seal(const char* data, size_t len);  // TLS: encrypt into the engine's output
  void send_corked(size_t n);                   // the first n corked bytes
  size_t whole_records(size_t n) const;
  void flush_early();  // plaintext written before the connection was ready
  void flush_tls();
  void fail(const std::string& reason);
  void fail_tls();            // the TLS engine failed: its reason, after its alert
  void linger_after_alert();  // close, letting a handshake alert reach the peer
  void update_reading();
  void maybe_finish_graceful();
  void capture_peer_address();
  bool connect_next_address(std::string* error);
  void note_attempt(const std::string& ip, const std::string& why);
  void renew_handles();
  void on_resolved(const Resolution& r);

  Loop& loop_;
  Handles* h_;
  TransportHandler* handler_ = nullptr;
  std::unique_ptr<tls::TlsEngine> tls_;
  // The write queue and its backpressure edges (see queue_grew).
  void queue_grew(size_t n);
  void queue_shrank(size_t n);
  void maybe_drained();
  size_t queued_ = 0;
  std::string corked_;  // written this iteration, not yet encrypted/sent
  bool flush_scheduled_ = false;
  bool was_above_high_ = false;
  uint32_t pause_mask_ = 0;
  bool reading_ = false;
  bool connected_ = false;
  bool closed_ = false;
  bool graceful_ = false;
  bool shutdown_sent_ = false;
  bool self_owned_ = false;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::string peer_address_;
  std::string peer_ip_;
  // Client connections to a host name: the name, the port, the pending
  // lookup, its addresses (tried in order until one connects) and what
  // each failed attempt reported.
  std::string host_;
  uint16_t port_ = 0;
  uint64_t lookup_id_ = 0;
  std::vector<std::string> addresses_;
  size_t next_address_ = 0;
  std::string attempts_;
};

}  // namespace fedproxy::net
