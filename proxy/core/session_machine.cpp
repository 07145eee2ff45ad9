#include "proxy/core/session_machine.hpp"

namespace fedproxy::core {

namespace {
// The upstream connection enforces connect and response deadlines itself;
// the session's backstop fires only if that ever failed to.
constexpr uint64_t kBackstopMs = 1000;
}  // namespace

const char* to_string(Direction d) { return d == Direction::egress ? "egress" : "ingress"; }

const char* to_string(Phase p) {
  switch (p) {
    case Phase::handshake: return "handshake";
    case Phase::read_head: return "read_head";
    case Phase::connect_upstream: return "connect_upstream";
    case Phase::send_request: return "send_request";
    case Phase::await_response: return "await_response";
    case Phase::stream_response: return "stream_response";
    case Phase::idle: return "idle";
    case Phase::tunnel: return "tunnel";
    case Phase::closing: return "closing";
  }
  return "closing";
}

const char* to_string(Side s) {
  switch (s) {
    case Side::none: return "none";
    case Side::client: return "client";
    case Side::upstream: return "upstream";
  }
  return "none";
}

SessionMachine::SessionMachine(Direction direction, const PhaseTimeouts& timeouts, uint64_t now_ms, bool tls)
    : direction_(direction), timeouts_(timeouts) {
  enter(tls ? Phase::handshake : Phase::idle, now_ms);
}

void SessionMachine::enter(Phase p, uint64_t now) {
  phase_ = p;
  switch (p) {
    case Phase::handshake: deadline_ = now + timeouts_.handshake_ms; break;
    case Phase::read_head: deadline_ = now + timeouts_.header_ms; break;
    case Phase::idle:
    case Phase::send_request:
    case Phase::stream_response: deadline_ = now + timeouts_.idle_ms; break;
    case Phase::connect_upstream: deadline_ = now + timeouts_.upstream_connect_ms + kBackstopMs; break;
    case Phase::await_response: deadline_ = now + timeouts_.upstream_response_ms + kBackstopMs; break;
    case Phase::tunnel: deadline_ = now + timeouts_.tunnel_idle_ms; break;
    case Phase::closing: deadline_ = 0; break;
  }
}

Side SessionMachine::waiting_on() const {
  switch (phase_) {
    case Phase::handshake:
    case Phase::read_head:
    case Phase::idle: return Side::client;
    case Phase::connect_upstream:
    case Phase::await_response: return Side::upstream;
    case Phase::send_request: return upstream_slow_ ? Side::upstream : Side::client;
    case Phase::stream_response: return client_slow_ ? Side::client : Side::upstream;
    case Phase::tunnel: return client_slow_ ? Side::client : upstream_slow_ ? Side::upstream : Side::client;
    case Phase::closing: return Side::none;
  }
  return Side::none;
}

std::optional<uint64_t> SessionMachine::deadline() const {
  if (phase_ == Phase::closing) return std::nullopt;
  return deadline_;
}

bool SessionMachine::in_exchange() const {
  switch (phase_) {
    case Phase::connect_upstream:
    case Phase::send_request:
    case Phase::await_response:
    case Phase::stream_response:
    case Phase::tunnel: return true;
    default: return false;
  }
}

void SessionMachine::handshake_done(uint64_t now) {
  if (phase_ == Phase::handshake) enter(Phase::idle, now);
}

void SessionMachine::head_started(uint64_t now) {
  // One deadline from the head's first byte, never reset by more bytes, so a
  // slowloris client cannot keep it alive.
  if (phase_ == Phase::idle) enter(Phase::read_head, now);
}

void SessionMachine::head_read(uint64_t now) {
  if (phase_ == Phase::closing) return;
  record_owed_ = true;
  request_complete_ = false;
  client_slow_ = upstream_slow_ = false;
  enter(Phase::send_request, now);  // until forwarded or answered
}

void SessionMachine::forwarded(uint64_t now, bool connecting) {
  if (phase_ == Phase::closing) return;
  enter(connecting ? Phase::connect_upstream : request_complete_ ? Phase::await_response : Phase::send_request, now);
}

void SessionMachine::upstream_connected(uint64_t now) {
  if (phase_ == Phase::connect_upstream) enter(request_complete_ ? Phase::await_response : Phase::send_request, now);
}

void SessionMachine::request_complete(uint64_t now) {
  request_complete_ = true;
  if (phase_ == Phase::send_request) enter(Phase::await_response, now);
}

void SessionMachine::answered_locally(uint64_t now) {
  if (phase_ == Phase::closing) return;
  client_slow_ = upstream_slow_ = false;
  enter(Phase::stream_response, now);
}

void SessionMachine::response_started(uint64_t now) {
  if (phase_ == Phase::closing) return;
  enter(Phase::stream_response, now);
}

void SessionMachine::progress(uint64_t now) {
  // Progress resets the progress deadlines only; handshake, head and the
  // upstream's own deadlines are fixed.
  switch (phase_) {
    case Phase::send_request:
    case Phase::stream_response:
    case Phase::tunnel: enter(phase_, now); break;
    default: break;
  }
}

void SessionMachine::tunnel_started(uint64_t now) {
  if (phase_ != Phase::closing) enter(Phase::tunnel, now);
}

std::optional<base::Outcome> SessionMachine::exchange_done(uint64_t now, base::Outcome outcome, bool keep_alive) {
  std::optional<base::Outcome> owed;
  if (record_owed_) owed = outcome;
  record_owed_ = false;
  client_slow_ = upstream_slow_ = false;
  enter(keep_alive && phase_ != Phase::closing ? Phase::idle : Phase::closing, now);
  return owed;
}

base::Outcome SessionMachine::outcome_of_timeout() const {
  return waiting_on() == Side::upstream ? base::Outcome::upstream_timeout : base::Outcome::client_timeout;
}

std::optional<base::Outcome> SessionMachine::expired() {
  std::optional<base::Outcome> owed;
  if (record_owed_) owed = outcome_of_timeout();
  record_owed_ = false;
  phase_ = Phase::closing;
  deadline_ = 0;
  return owed;
}

std::optional<base::Outcome> SessionMachine::cut(Cut cause) {
  std::optional<base::Outcome> owed;
  if (record_owed_) {
    switch (cause) {
      case Cut::client_eof:
      case Cut::client_error: owed = base::Outcome::client_aborted; break;
      case Cut::upstream_failed: owed = base::Outcome::upstream_error; break;
      case Cut::shutdown: owed = base::Outcome::shutdown_cut; break;
      case Cut::malformed: owed = base::Outcome::denied; break;
    }
  }
  record_owed_ = false;
  phase_ = Phase::closing;
  deadline_ = 0;
  return owed;
}

}  // namespace fedproxy::core
