// Peer liveness (SPEC §7): every heartbeat interval fedproxy fetches each
// peer's /.well-known/fedproxy-manifest.json over mTLS, through the same
// pool egress uses. unknown → active on success; active → degraded after 3
// failures in a row; back to active on the next success.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "proxy/core/egress_router.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::core {

enum class PeerState { unknown, active, degraded };
const char* to_string(PeerState state);

struct PeerHealth {
  PeerState state = PeerState::unknown;
  int consecutive_failures = 0;
  int64_t last_seen_unix_ms = 0;  // last successful probe, 0 = never
  std::string last_error;
};

constexpr int kFailuresBeforeDegraded = 3;

// The pure transition: apply one probe result. Returns true when the state changed.
bool record_probe(PeerHealth& health, bool ok, int64_t now_unix_ms, const std::string& error = {});

class PeerLiveness {
 public:
  using OnChange = std::function<void(const std::string& peer, PeerState from, PeerState to,
                                      const std::string& detail)>;
  PeerLiveness(net::Loop& loop, EgressRouter& router, uint32_t interval_ms, OnChange on_change);
  ~PeerLiveness();
  void stop();  // no more probes; in-flight ones are abandoned
  const std::map<std::string, PeerHealth>& health() const { return health_; }

  class Probe;
  void probe_done(Probe* probe, const std::string& peer, bool ok, const std::string& error);

 private:
  void probe_all();
  net::Loop& loop_;
  EgressRouter& router_;
  OnChange on_change_;
  net::Timer timer_;
  std::map<std::string, PeerHealth> health_;
  std::set<Probe*> in_flight_;
  bool stopped_ = false;
};

}  // namespace fedproxy::core
