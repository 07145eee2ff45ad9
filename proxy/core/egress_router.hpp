// Egress (SPEC §7): the local app calls a peer through fedproxy over plain
// HTTP on loopback; the router picks the peer from an absolute-form request
// line (`curl -x`, HTTP_PROXY) or the Host header, and hands the session
// that peer's pool of mTLS connections, which verify the peer's URI SAN.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "policy/policy.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/upstream.hpp"

namespace fedproxy::core {

class EgressRouter final : public Authorizer {
 public:
  // base: timeouts and pool limits for every peer connection.
  EgressRouter(net::Loop& loop, UpstreamOptions base) : loop_(loop), base_(std::move(base)) {}
  // (Re)load the peers. Pools are kept across reloads (keyed by endpoint and
  // expected identity), so open connections are never orphaned; new
  // connections use the new client context. Never resolves a name (host
  // names are looked up at connect time, off the loop). Returns problems
  // (endpoints that are not valid https:// URLs), one line each; a peer
  // without a usable endpoint answers 502 peer_unavailable.
  std::vector<std::string> set_peers(const policy::Snapshot* snapshot,
                                     std::shared_ptr<const tls::TlsContext> client_tls);

  Verdict authorize(const RequestView& request) override;
  void close_idle();
  // A reload: the timeouts of `from` for every peer's pool, now and later.
  void set_run_time_options(const UpstreamOptions& from);

  // For liveness probes: the configured peers and how to reach each.
  std::vector<std::string> peer_slugs() const;
  // The endpoint a request would use now (failover order); null: none usable.
  UpstreamPool* pool_for(const std::string& slug) const;
  std::string host_header_for(const std::string& slug) const;

 private:
  struct Route {
    std::vector<UpstreamPool*> pools;  // one per usable endpoint, in manifest order
    std::vector<std::string> host_headers;
  };
  // Endpoint indexes in manifest order, recently failed ones last.
  std::vector<size_t> failover_order(const Route& route) const;
  net::Loop& loop_;
  UpstreamOptions base_;
  std::unordered_map<std::string, Route> routes_;  // peer slug → route
  std::map<std::string, std::unique_ptr<UpstreamPool>> pools_;
};

}  // namespace fedproxy::core
