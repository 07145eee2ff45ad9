#include <doctest/doctest.h>

#include "proxy/core/peer_liveness.hpp"

using fedproxy::core::PeerHealth;
using fedproxy::core::PeerState;
using fedproxy::core::record_probe;

TEST_CASE("liveness: unknown -> active on the first success") {
  PeerHealth h;
  CHECK(record_probe(h, true, 1000));
  CHECK(h.state == PeerState::active);
  CHECK(h.last_seen_unix_ms == 1000);
}

TEST_CASE("liveness: active -> degraded only after 3 failures in a row") {
  PeerHealth h;
  record_probe(h, true, 1000);
  CHECK_FALSE(record_probe(h, false, 2000, "refused"));
  CHECK_FALSE(record_probe(h, false, 3000, "refused"));
  CHECK(h.state == PeerState::active);
  CHECK(record_probe(h, false, 4000, "refused"));
  CHECK(h.state == PeerState::degraded);
  CHECK(h.last_error == "refused");
  CHECK(h.last_seen_unix_ms == 1000);  // last success, not last attempt
}

TEST_CASE("liveness: a success in between resets the failure count") {
  PeerHealth h;
  record_probe(h, true, 1);
  record_probe(h, false, 2);
  record_probe(h, false, 3);
  record_probe(h, true, 4);
  record_probe(h, false, 5);
  record_probe(h, false, 6);
  CHECK(h.state == PeerState::active);
}

TEST_CASE("liveness: degraded -> active on the next success; unknown peers degrade too") {
  PeerHealth h;
  for (int i = 0; i < 3; ++i) record_probe(h, false, i, "down");
  CHECK(h.state == PeerState::degraded);  // never seen, never answered
  CHECK(record_probe(h, true, 10));
  CHECK(h.state == PeerState::active);
  CHECK(h.consecutive_failures == 0);
  CHECK(h.last_error.empty());
}
