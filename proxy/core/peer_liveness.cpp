#include "proxy/core/peer_liveness.hpp"


#include "proxy/core/http_fetch.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::core {

namespace {
}  // namespace

const char* to_string(PeerState state) {
  switch (state) {
    case PeerState::active: return "active";
    case PeerState::degraded: return "degraded";
    default: return "unknown";
  }
}

bool record_probe(PeerHealth& h, bool ok, int64_t now_unix_ms, const std::string& error) {
  PeerState before = h.state;
  if (ok) {
    h.consecutive_failures = 0;
    h.last_seen_unix_ms = now_unix_ms;
    h.last_error.clear();
    h.state = PeerState::active;
  } else {
    ++h.consecutive_failures;
    h.last_error = error;
    if (h.consecutive_failures >= kFailuresBeforeDegraded) h.state = PeerState::degraded;
  }
  return h.state != before;
}

// One manifest fetch over a pooled mTLS connection.
class PeerLiveness::Probe final : public net::Deletable {
 public:
  Probe(PeerLiveness& owner, std::string peer)
      : owner_(owner), peer_(std::move(peer)), fetch_([this](FetchResult&& r) { done(std::move(r)); }, kMaxBody) {}
  void start(UpstreamPool& pool, const std::string& host) {
    fetch_.start(pool, host, "/.well-known/fedproxy-manifest.json", "fedproxy-heartbeat", "application/json");
  }
  void abandon() { fetch_.abandon(); }

 private:
  static constexpr size_t kMaxBody = 1 << 20;  // a manifest is a few hundred bytes
  void done(FetchResult&& r) {
    const bool ok = r.error.empty() && r.status == 200;
    owner_.probe_done(this, peer_, ok,
                      !r.error.empty() ? r.error : ok ? "" : "manifest fetch answered HTTP " + std::to_string(r.status));
  }

  PeerLiveness& owner_;
  std::string peer_;
  HttpFetch fetch_;
};

PeerLiveness::PeerLiveness(net::Loop& loop, EgressRouter& router, uint32_t interval_ms, OnChange on_change)
    : loop_(loop), router_(router), on_change_(std::move(on_change)), timer_(loop, [this] { probe_all(); }) {
  timer_.start(0, interval_ms);  // first round at once, so /status soon knows
  timer_.unref();
}

PeerLiveness::~PeerLiveness() { stop(); }

void PeerLiveness::stop() {
  stopped_ = true;
  timer_.stop();
  for (Probe* p : in_flight_) {
    p->abandon();
    loop_.defer_delete(p);
  }
  in_flight_.clear();
}

void PeerLiveness::probe_all() {
  if (stopped_) return;
  std::map<std::string, PeerHealth> next;
  for (const auto& slug : router_.peer_slugs()) {
    auto it = health_.find(slug);
    next[slug] = it == health_.end() ? PeerHealth{} : it->second;  // peers removed by a reload drop out
  }
  health_ = std::move(next);
  for (const auto& [slug, health] : health_) {
    UpstreamPool* pool = router_.pool_for(slug);
    auto* probe = new Probe(*this, slug);
    in_flight_.insert(probe);
    if (!pool) {
      probe_done(probe, slug, false, "no usable endpoint in the peer's manifest");
      continue;
    }
    probe->start(*pool, router_.host_header_for(slug));
  }
}

void PeerLiveness::probe_done(Probe* probe, const std::string& peer, bool ok, const std::string& error) {
  if (!in_flight_.erase(probe)) return;
  loop_.defer_delete(probe);
  auto it = health_.find(peer);
  if (it == health_.end()) return;
  PeerState before = it->second.state;
  if (record_probe(it->second, ok, net::Loop::unix_ms(), error) && on_change_) {
    on_change_(peer, before, it->second.state, ok ? "" : error);
  }
}

}  // namespace fedproxy::core
