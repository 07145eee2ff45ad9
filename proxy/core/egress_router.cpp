#include "proxy/core/egress_router.hpp"

#include <algorithm>
#include <cctype>

#include "proxy/net/address.hpp"

namespace fedproxy::core {

namespace {

// How long an endpoint whose connect failed is tried only after the others.
constexpr uint64_t kFailoverHoldMs = 10000;

Verdict deny(int status, const char* code, std::string message) {
  Verdict v;
  v.allow = false;
  v.status = status;
  v.code = code;
  v.message = std::move(message);
  v.decision = base::Decision::deny;
  v.reason = code;
  return v;
}

std::string host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') return std::string(host.substr(0, host.find(']') + 1));
  std::string out(host.substr(0, host.rfind(':')));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::vector<std::string> EgressRouter::set_peers(const policy::Snapshot* snapshot,
                                                 std::shared_ptr<const tls::TlsContext> client_tls) {
  std::vector<std::string> problems;
  std::unordered_map<std::string, Route> routes;
  if (snapshot) {
    for (const auto& peer : snapshot->peers()) {
      Route& route = routes[peer.slug];
      for (const auto& url : peer.endpoints) {
        std::string error, host_header;
        auto endpoint = net::endpoint_from_url(url, &host_header, &error);
        if (!endpoint) {
          problems.push_back("peer " + peer.slug + ": " + error);
          continue;
        }
        std::string pin = peer.cert_fingerprint.value_or("");
        // A changed anchor set gets new pools: open connections were accepted
        // under the old anchors.
        std::vector<std::string> anchors;
        for (const auto& a : peer.trust_anchors) anchors.push_back(a.spki_sha256);
        std::sort(anchors.begin(), anchors.end());
        anchors.erase(std::unique(anchors.begin(), anchors.end()), anchors.end());
        // Without anchors of its own: no chain through another peer's CA.
        const std::vector<std::string> refused =
            anchors.empty() ? snapshot->peer_only_anchor_spki() : std::vector<std::string>{};
        std::string key = endpoint->text + "|" + peer.entity_uri + "|" + pin;
        for (const auto& a : anchors) key += "|" + a;
        for (const auto& r : refused) key += "|!" + r;
        auto& pool = pools_[key];
        if (!pool) {
          UpstreamOptions opts = base_;
          opts.endpoint = *endpoint;
          opts.tls = client_tls;
          opts.expected_uri = peer.entity_uri;
          opts.expected_pin = pin;
          opts.expected_anchor_spki = std::move(anchors);
          opts.refused_anchor_spki = refused;
          opts.name = "peer " + peer.slug;
          pool = std::make_unique<UpstreamPool>(loop_, std::move(opts));
        } else {
          pool->set_tls(client_tls);
        }
        route.pools.push_back(pool.get());
        route.host_headers.push_back(host_header);
      }
    }
  }
  routes_ = std::move(routes);
  return problems;
}

Verdict EgressRouter::authorize(const RequestView& r) {
  std::string_view target = r.head.target;
  std::string host;
  std::string origin_target;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.substr(0, scheme.size()) == scheme) {
      std::string_view rest = target.substr(scheme.size());
      size_t slash = rest.find_first_of("/?");
      host = host_without_port(rest.substr(0, slash));
      origin_target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
      if (origin_target.front() == '?') origin_target.insert(0, "/");
    }
  }
  if (host.empty()) {
    const http1::Header* h = http1::find_header(r.head.headers, "host");
    if (h) host = host_without_port(h->value);
  }
  auto it = routes_.find(host);
  if (it == routes_.end()) {
    return deny(502, "unknown_peer", "No configured peer is named \"" + host + "\".");
  }
  const Route& route = it->second;
  if (route.pools.empty()) {
    Verdict v = deny(502, "peer_unavailable", "The peer has no usable endpoint in its manifest.");
    v.peer = it->first;
    return v;
  }
  Verdict v;
  if (route.pools.size() == 1) {  // the usual case: nothing to order
    v.pool = route.pools.front();
    v.host = route.host_headers.front();
  } else {
    std::vector<size_t> order = failover_order(route);
    v.pool = route.pools[order.front()];
    v.host = route.host_headers[order.front()];
    for (size_t k = 1; k < order.size(); ++k) v.fallbacks.push_back(route.pools[order[k]]);
  }
  v.target = std::move(origin_target);
  v.peer = it->first;
  return v;
}

std::vector<std::string> EgressRouter::peer_slugs() const {
  std::vector<std::string> out;
  out.reserve(routes_.size());
  for (const auto& [slug, route] : routes_) out.push_back(slug);
  return out;
}

std::vector<size_t> EgressRouter::failover_order(const Route& route) const {
  // Manifest order, endpoints whose last connect failed recently last (so a
  // request is still tried everywhere).
  uint64_t now = loop_.now_ms();
  std::vector<size_t> order;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < route.pools.size(); ++i) {
      uint64_t failed = route.pools[i]->last_connect_failure_ms();
      bool recent = failed != 0 && now - failed < kFailoverHoldMs;
      if (recent == (pass == 1)) order.push_back(i);
    }
  }
  return order;
}

UpstreamPool* EgressRouter::pool_for(const std::string& slug) const {
  auto it = routes_.find(slug);
  if (it == routes_.end() || it->second.pools.empty()) return nullptr;
  return it->second.pools[failover_order(it->second).front()];
}

std::string EgressRouter::host_header_for(const std::string& slug) const {
  auto it = routes_.find(slug);
  if (it == routes_.end() || it->second.pools.empty()) return {};
  return it->second.host_headers[failover_order(it->second).front()];
}

void EgressRouter::close_idle() {
  for (auto& [key, pool] : pools_) pool->close_idle(true);
}

void EgressRouter::set_run_time_options(const UpstreamOptions& from) {
  take_run_time_options(base_, from);
  for (auto& [key, pool] : pools_) pool->set_run_time_options(base_);
}

}  // namespace fedproxy::core
