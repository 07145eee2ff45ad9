// The phase of one proxied connection, its deadline, and how each exchange
// on it ended: a pure state machine (events and `now` in, a deadline and an
// outcome out), shared by both directions. ProxySession feeds it from the
// transports and executes what it decides; it is unit- and model-tested with
// a fake clock (tests/unit/core/session_machine_test.cpp).
//
// Every phase names the side it waits on and owns one deadline, so our own
// backpressure can never look like a slow peer (SPEC §1 timeouts):
//   handshake        client    handshake_ms from accept
//   read_head        client    header_ms from the head's first byte (fixed)
//   idle             client    idle_ms since the last exchange (keep-alive)
//   connect_upstream upstream  the connect deadline (the upstream connection's)
//   send_request     client    idle_ms of no progress while the body streams
//   await_response   upstream  upstream_response_ms (the upstream connection's)
//   stream_response  either    idle_ms of no progress
//   tunnel           either    tunnel_idle_ms of no progress (WebSocket)
//   closing          none      the transport's own linger bound
#pragma once

#include <cstdint>
#include <optional>

#include "proxy/base/outcome.hpp"

namespace fedproxy::core {

enum class Direction { ingress, egress };

enum class Phase {
  handshake,
  read_head,
  connect_upstream,
  send_request,
  await_response,
  stream_response,
  idle,
  tunnel,
  closing,
};

enum class Side { none, client, upstream };

const char* to_string(Direction d);  // the metrics and log label
const char* to_string(Phase p);
const char* to_string(Side s);

struct PhaseTimeouts {
  uint32_t handshake_ms = 10000;
  uint32_t header_ms = 10000;
  uint32_t idle_ms = 60000;
  // The upstream connection enforces these itself; the session keeps a
  // backstop one second later so no phase is ever without a deadline.
  uint32_t upstream_connect_ms = 5000;
  uint32_t upstream_response_ms = 60000;
  uint32_t tunnel_idle_ms = 300000;
};

// Why a connection or an exchange ended before its response did.
enum class Cut {
  client_eof,      // the client closed (FIN) or reset
  client_error,    // transport error on the client side
  upstream_failed, // the app/peer failed after the response began
  shutdown,        // the shutdown grace ran out
  malformed,       // our parser refused what followed (already answered)
};

class SessionMachine {
 public:
  SessionMachine(Direction direction, const PhaseTimeouts& timeouts, uint64_t now_ms, bool tls);

  Direction direction() const { return direction_; }
  Phase phase() const { return phase_; }
  // The side the current phase waits on, and its absolute deadline (loop
  // ms). Every phase but closing has one.
  Side waiting_on() const;
  std::optional<uint64_t> deadline() const;
  // A reload: the new values apply from the next phase change or progress.
  void set_timeouts(const PhaseTimeouts& t) { timeouts_ = t; }

  // ---- events -----------------------------------------------------------
  void handshake_done(uint64_t now);
  void head_started(uint64_t now);   // the first byte of a request head
  // A request head was read: one audit record is now owed.
  void head_read(uint64_t now);
  // The exchange is forwarded: connecting (a new upstream connection) or
  // writing on a pooled one (again after a retry or a failover).
  void forwarded(uint64_t now, bool connecting);
  void upstream_connected(uint64_t now);
  void request_complete(uint64_t now);
  // We answer the request ourselves (refusal, manifest, 502/504).
  void answered_locally(uint64_t now);
  void response_started(uint64_t now);
  // Bytes moved on the current exchange or tunnel (either side).
  void progress(uint64_t now);
  // Our backpressure: reading the upstream is paused because the client
  // does not read (the wait is on the client), or reading the client is
  // paused because the upstream does not take the body (the wait is on the
  // upstream). Never counted against the side we paused.
  void client_backpressure(bool on) { client_slow_ = on; }
  void upstream_backpressure(bool on) { upstream_slow_ = on; }
  void tunnel_started(uint64_t now);
  // The response ended. Returns the record's outcome if one is owed (exactly
  // once per request), then the machine is idle or closing.
  std::optional<base::Outcome> exchange_done(uint64_t now, base::Outcome outcome, bool keep_alive);
  // The deadline passed: returns the outcome for a record owed, if any, and
  // the machine is closing.
  std::optional<base::Outcome> expired();
  // The connection ends now for `cut`: the outcome of a record owed, if any.
  std::optional<base::Outcome> cut(Cut cause);
  // Graceful end between exchanges (client EOF while idle, drain).
  void close() { phase_ = Phase::closing; }

  bool record_owed() const { return record_owed_; }
  bool in_exchange() const;

 private:
  void enter(Phase p, uint64_t now);
  base::Outcome outcome_of_timeout() const;

  Direction direction_;
  PhaseTimeouts timeouts_;
  Phase phase_ = Phase::handshake;
  uint64_t deadline_ = 0;
  bool record_owed_ = false;
  bool request_complete_ = false;  // the whole request body was read
  bool client_slow_ = false;
  bool upstream_slow_ = false;
};

}  // namespace fedproxy::core
