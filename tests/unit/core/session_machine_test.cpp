// The session's phases, deadlines and outcomes with a fake clock, and a
// randomized model test over thousands of event sequences.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <random>

#include "proxy/core/session_machine.hpp"

using namespace fedproxy;
using core::Cut;
using core::Phase;
using core::SessionMachine;
using core::Side;
using base::Outcome;

namespace {
core::PhaseTimeouts timeouts() {
  core::PhaseTimeouts t;
  t.handshake_ms = 100;
  t.header_ms = 200;
  t.idle_ms = 300;
  t.upstream_connect_ms = 400;
  t.upstream_response_ms = 500;
  t.tunnel_idle_ms = 600;
  return t;
}
}  // namespace

TEST_CASE("each phase has its own deadline and names the side it waits on") {
  SessionMachine m(core::Direction::ingress, timeouts(), 1000, true);
  CHECK(m.phase() == Phase::handshake);
  CHECK(m.waiting_on() == Side::client);
  CHECK(*m.deadline() == 1100);
  m.handshake_done(1050);
  CHECK(m.phase() == Phase::idle);
  CHECK(*m.deadline() == 1350);
  m.head_started(1060);
  CHECK(m.phase() == Phase::read_head);
  CHECK(*m.deadline() == 1260);
  m.head_started(1200);  // more head bytes: the head deadline is fixed
  CHECK(*m.deadline() == 1260);
  m.head_read(1210);
  CHECK(m.record_owed());
  m.forwarded(1210, /*connecting=*/true);
  CHECK(m.phase() == Phase::connect_upstream);
  CHECK(m.waiting_on() == Side::upstream);
  CHECK(*m.deadline() == 1210 + 400 + 1000);  // the upstream's deadline + backstop
  m.upstream_connected(1220);
  CHECK(m.phase() == Phase::send_request);
  CHECK(m.waiting_on() == Side::client);
  m.progress(1300);
  CHECK(*m.deadline() == 1600);
  m.request_complete(1310);
  CHECK(m.phase() == Phase::await_response);
  CHECK(*m.deadline() == 1310 + 500 + 1000);
  m.response_started(1400);
  CHECK(m.phase() == Phase::stream_response);
  CHECK(m.waiting_on() == Side::upstream);
  auto owed = m.exchange_done(1500, Outcome::completed, true);
  REQUIRE(owed);
  CHECK(*owed == Outcome::completed);
  CHECK_FALSE(m.record_owed());
  CHECK(m.phase() == Phase::idle);
  CHECK(*m.deadline() == 1800);
}

TEST_CASE("our own backpressure is never the peer's timeout") {
  SessionMachine m(core::Direction::egress, timeouts(), 0, false);
  m.head_read(10);
  m.request_complete(10);
  m.forwarded(10, false);
  CHECK(m.phase() == Phase::await_response);
  m.response_started(20);
  // The client stopped reading: we paused the upstream. The wait is on the
  // client; a timeout now is the client's.
  m.client_backpressure(true);
  CHECK(m.waiting_on() == Side::client);
  auto owed = m.expired();
  REQUIRE(owed);
  CHECK(*owed == Outcome::client_timeout);
  CHECK(m.phase() == Phase::closing);
  CHECK_FALSE(m.deadline());
}

TEST_CASE("an upload into a slow app times out on the upstream, a stalled uploader on the client") {
  SessionMachine a(core::Direction::ingress, timeouts(), 0, false);
  a.head_read(0);
  a.forwarded(0, false);
  a.upstream_backpressure(true);
  CHECK(a.waiting_on() == Side::upstream);
  CHECK(*a.expired() == Outcome::upstream_timeout);

  SessionMachine b(core::Direction::ingress, timeouts(), 0, false);
  b.head_read(0);
  b.forwarded(0, false);
  CHECK(b.waiting_on() == Side::client);
  CHECK(*b.expired() == Outcome::client_timeout);
}

TEST_CASE("a cut owes the record its cause names; nothing is owed between requests") {
  struct Row {
    Cut cause;
    Outcome outcome;
  };
  const Row rows[] = {{Cut::client_eof, Outcome::client_aborted},
                      {Cut::client_error, Outcome::client_aborted},
                      {Cut::upstream_failed, Outcome::upstream_error},
                      {Cut::shutdown, Outcome::shutdown_cut},
                      {Cut::malformed, Outcome::denied}};
  for (const Row& row : rows) {
    SessionMachine m(core::Direction::ingress, timeouts(), 0, false);
    m.head_read(0);
    m.forwarded(0, true);
    auto owed = m.cut(row.cause);
    REQUIRE(owed);
    CHECK(*owed == row.outcome);
    CHECK_FALSE(m.cut(row.cause));  // once
  }
  SessionMachine idle(core::Direction::ingress, timeouts(), 0, true);
  CHECK_FALSE(idle.expired());  // a handshake timeout owes no request record
}

TEST_CASE("the connect and response waits time out as the upstream's") {
  SessionMachine m(core::Direction::egress, timeouts(), 0, false);
  m.head_read(0);
  m.request_complete(0);
  m.forwarded(0, true);
  CHECK(*m.expired() == Outcome::upstream_timeout);
  SessionMachine n(core::Direction::egress, timeouts(), 0, false);
  n.head_read(0);
  n.request_complete(0);
  n.forwarded(0, true);
  n.upstream_connected(5);  // the request is complete: straight to awaiting
  CHECK(n.phase() == Phase::await_response);
  CHECK(*n.expired() == Outcome::upstream_timeout);
}

TEST_CASE("a tunnel has its own idle deadline and one record at its end") {
  SessionMachine m(core::Direction::ingress, timeouts(), 0, false);
  m.head_read(0);
  m.request_complete(0);
  m.forwarded(0, false);
  m.response_started(10);
  m.tunnel_started(10);
  CHECK(m.phase() == Phase::tunnel);
  CHECK(*m.deadline() == 610);
  m.progress(500);
  CHECK(*m.deadline() == 1100);
  CHECK(m.record_owed());
  auto owed = m.exchange_done(700, Outcome::completed, false);
  REQUIRE(owed);
  CHECK(m.phase() == Phase::closing);
}

// Random event sequences against the invariants: a deadline in every phase
// but closing, a deadline never in the past after an event, exactly one
// record per request head read, nothing after closing.
TEST_CASE("model: thousands of random interleavings keep the invariants") {
  std::mt19937 rng(20261207);
  int sequences = 0;
  uint64_t heads_total = 0;
  for (int seq = 0; seq < 5000; ++seq) {
    uint64_t now = 0;
    SessionMachine m(core::Direction::ingress, timeouts(), now, rng() % 2 == 0);
    uint64_t heads = 0, records = 0;
    auto count = [&](std::optional<Outcome> o) {
      if (o) ++records;
    };
    for (int step = 0; step < 60 && m.phase() != Phase::closing; ++step) {
      now += rng() % 40;
      // The timer fires first when its deadline passed.
      if (m.deadline() && *m.deadline() <= now) {
        count(m.expired());
        break;
      }
      const bool owed_before = m.record_owed();
      switch (rng() % 14) {
        case 0: m.handshake_done(now); break;
        case 1: m.head_started(now); break;
        case 2:
          if (m.phase() != Phase::handshake && !m.record_owed()) {
            m.head_read(now);
            ++heads;
          }
          break;
        case 3: if (owed_before) m.forwarded(now, rng() % 2 == 0); break;
        case 4: m.upstream_connected(now); break;
        case 5: if (owed_before) m.request_complete(now); break;
        case 6: if (owed_before) m.answered_locally(now); break;
        case 7: if (owed_before) m.response_started(now); break;
        case 8: m.progress(now); break;
        case 9: m.client_backpressure(rng() % 2 == 0); break;
        case 10: m.upstream_backpressure(rng() % 2 == 0); break;
        case 11: if (owed_before && rng() % 4 == 0) m.tunnel_started(now); break;
        case 12:
          if (owed_before) count(m.exchange_done(now, Outcome::completed, rng() % 3 != 0));
          break;
        case 13:
          if (rng() % 8 == 0) count(m.cut(static_cast<Cut>(rng() % 5)));
          break;
      }
      if (m.phase() == Phase::closing) {
        CHECK_FALSE(m.deadline());
        CHECK(m.waiting_on() == Side::none);
      } else {
        REQUIRE(m.deadline());
        CHECK(m.waiting_on() != Side::none);
        // Fixed deadlines (handshake, head) may lie in the past only until
        // the timer fires, which the loop above models.
        if (m.phase() != Phase::handshake && m.phase() != Phase::read_head &&
            m.phase() != Phase::connect_upstream && m.phase() != Phase::await_response)
          CHECK(*m.deadline() > now);
      }
    }
    count(m.cut(Cut::shutdown));  // the session ends: whatever is owed is written
    CHECK_FALSE(m.record_owed());
    CHECK_FALSE(m.cut(Cut::shutdown));  // and never twice
    REQUIRE(records == heads);
    heads_total += heads;
    ++sequences;
  }
  CHECK(sequences == 5000);
  CHECK(heads_total > 2500);  // the sequences did exercise requests (3,072 with this seed)
}
