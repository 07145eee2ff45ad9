// The proxy session's state machine under arbitrary event sequences: each
// input byte pair is one event and a clock step. Invariants (the issue-16
// contract of SessionMachine):
//   - every phase but closing has a deadline, closing has none;
//   - after every event the deadline is ahead of now;
//   - every request head read owes exactly one record: records written ==
//     heads read once the session ends, and never a second one;
//   - nothing happens after closing.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "proxy/core/session_machine.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using fedproxy::base::Outcome;
using fedproxy::core::Cut;
using fedproxy::core::Phase;
using fedproxy::core::SessionMachine;
using fedproxy::core::Side;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  fedproxy::core::PhaseTimeouts t;
  t.handshake_ms = 100;
  t.header_ms = 200;
  t.idle_ms = 300;
  t.upstream_connect_ms = 400;
  t.upstream_response_ms = 500;
  t.tunnel_idle_ms = 600;
  uint64_t now = 1000;
  SessionMachine m(data[0] & 1 ? fedproxy::core::Direction::egress : fedproxy::core::Direction::ingress, t, now,
                   (data[0] & 2) != 0);
  uint64_t heads = 0, records = 0;
  auto count = [&](std::optional<Outcome> o) {
    if (o) ++records;
  };
  for (size_t i = 1; i + 1 < size && m.phase() != Phase::closing; i += 2) {
    const uint8_t ev = data[i];
    now += data[i + 1];
    if (m.deadline() && *m.deadline() <= now) {  // the timer fires first
      count(m.expired());
      break;
    }
    const bool owed = m.record_owed();
    switch (ev % 16) {
      case 0: m.handshake_done(now); break;
      case 1: m.head_started(now); break;
      case 2:
        if (m.phase() != Phase::handshake && !owed) {
          m.head_read(now);
          ++heads;
        }
        break;
      case 3: if (owed) m.forwarded(now, (ev & 0x10) != 0); break;
      case 4: m.upstream_connected(now); break;
      case 5: if (owed) m.request_complete(now); break;
      case 6: if (owed) m.answered_locally(now); break;
      case 7: if (owed) m.response_started(now); break;
      case 8: m.progress(now); break;
      case 9: m.client_backpressure((ev & 0x10) != 0); break;
      case 10: m.upstream_backpressure((ev & 0x10) != 0); break;
      case 11: if (owed) m.tunnel_started(now); break;
      case 12: if (owed) count(m.exchange_done(now, Outcome::completed, (ev & 0x10) != 0)); break;
      case 13: count(m.cut(static_cast<Cut>((ev >> 4) % 5))); break;
      case 14: m.set_timeouts(t); break;
      case 15: if (!owed) m.close(); break;
    }
    if (m.phase() == Phase::closing) {
      FUZZ_CHECK(!m.deadline(), "closing has no deadline");
      FUZZ_CHECK(m.waiting_on() == Side::none, "closing waits on nobody");
    } else {
      FUZZ_CHECK(m.deadline().has_value(), "every phase but closing has a deadline");
      FUZZ_CHECK(m.waiting_on() != Side::none, "every phase waits on a side");
      // The deadline was ahead before the event (else the timer fired) and
      // an event only moves it to now + a positive timeout.
      FUZZ_CHECK(*m.deadline() > now, "the deadline is ahead after every event");
    }
  }
  count(m.cut(Cut::shutdown));
  FUZZ_CHECK(!m.record_owed(), "nothing owed after the end");
  FUZZ_CHECK(!m.cut(Cut::shutdown).has_value(), "never a second record");
  FUZZ_CHECK(records == heads, "exactly one record per request head");
  return 0;
}
