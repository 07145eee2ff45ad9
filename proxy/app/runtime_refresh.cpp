// Runtime: documents fetched again and again — the CRLs of tls.crl_urls and
// the trust bundles of peers with refresh_bundle (issue 17). Each accepted
// change is logged, audited and swapped in with a reload (the same snapshot
// swap as a file change); a failed fetch keeps what is in use.
#include <algorithm>
#include <ctime>
#include <utility>

#include "config/state_file.hpp"
#include "config/host.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/runtime.hpp"

namespace fedproxy::app {

namespace {

constexpr const char* kBundlePath = "/.well-known/fedproxy-bundle.json";

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

std::vector<std::string> refreshed_peers(const config::Config& cfg) {
  std::vector<std::string> out;
  for (const auto& p : cfg.peers) {
    if (p.refresh_bundle) out.push_back(p.org);
  }
  return out;
}

}  // namespace

void Runtime::start_refreshers() {
  if (!snap_->server_tls) return;  // insecure mode: no TLS, no CRL, no bundles
  core::DocumentRefresher::Options crl_options;
  crl_options.max_body_bytes = 16u << 20;  // large CAs publish CRLs of a few MiB
  crl_options.user_agent = "fedproxy-crl";
  crl_options.accept = "application/pkix-crl, */*";
  crl_refresher_ = std::make_unique<core::DocumentRefresher>(
      loop_, crl_options, [this](const std::string& url, std::string* why) { return crl_target(url, why); },
      [this](const std::string& url, core::FetchResult&& r) { on_crl_fetched(url, std::move(r)); });
  if (worker0_->egress_router()) {
    core::DocumentRefresher::Options bundle_options;
    bundle_options.user_agent = "fedproxy-bundle";
    bundle_options.accept = "application/json";
    bundle_refresher_ = std::make_unique<core::DocumentRefresher>(
        loop_, bundle_options,
        [this](const std::string& peer, std::string* why) -> std::optional<core::DocumentRefresher::Target> {
          core::EgressRouter* router = worker0_->egress_router();
          core::UpstreamPool* pool = router ? router->pool_for(peer) : nullptr;
          if (!pool) {
            *why = "no usable endpoint in the peer's manifest";
            return std::nullopt;
          }
          return core::DocumentRefresher::Target{pool, router->host_header_for(peer), kBundlePath};
        },
        [this](const std::string& peer, core::FetchResult&& r) { on_bundle_fetched(peer, std::move(r)); });
  }
  refreshers_follow_config();
}

void Runtime::refreshers_follow_config() {
  const config::Config& cfg = snap_->config;
  crls_.forget_others(cfg.tls.crl_urls);
  std::erase_if(crl_pools_, [&](const auto& kv) {
    return std::find(cfg.tls.crl_urls.begin(), cfg.tls.crl_urls.end(), kv.first) == cfg.tls.crl_urls.end();
  });
  if (crl_refresher_) crl_refresher_->set_keys(cfg.tls.crl_urls);
  const std::vector<std::string> peers = refreshed_peers(cfg);
  bundles_.forget_others(peers);
  if (bundle_refresher_) bundle_refresher_->set_keys(peers);
}

std::optional<core::DocumentRefresher::Target> Runtime::crl_target(const std::string& url, std::string* why) {
  auto parsed = config::parse_http_url(url, why);
  if (!parsed) return std::nullopt;
  auto& pool = crl_pools_[url];
  if (!pool) {
    core::UpstreamOptions options;
    options.endpoint.kind = config::Endpoint::Kind::tcp;
    options.endpoint.host = parsed->host.host;
    options.endpoint.port = *parsed->host.port;
    options.endpoint.text = parsed->host.to_string();
    options.name = url;
    options.connect_timeout_ms = 5000;
    options.response_timeout_ms = 30000;
    options.idle_timeout_ms = 1000;
    options.max_idle = 0;  // a fetch an hour: no connection kept open
    pool = std::make_unique<core::UpstreamPool>(loop_, std::move(options));
  }
  return core::DocumentRefresher::Target{pool.get(), parsed->host.to_string(), parsed->path};
}

void Runtime::on_crl_fetched(const std::string& url, core::FetchResult&& result) {
  if (!snap_->server_tls || stopping_) return;
  CrlStore::Outcome o = crls_.accept(url, std::move(result), *snap_->server_tls->bundle().ca_chain(), unix_now(),
                                     snap_->config.tls.crl_refresh_ms);
  crl_refresher_->schedule(url, o.next_fetch_ms);
  if (!o.error.empty()) {
    LogLine("warn", "crl fetch failed").str("url", url).str("error", o.error).num("retry_ms", static_cast<int64_t>(o.next_fetch_ms));
    return;
  }
  if (!o.changed) return;
  const CrlSource& src = crls_.sources().at(url);
  LogLine("info", "crl updated").str("url", url).str("issuer", src.issuer).num("this_update", src.this_update)
      .num("next_update", src.next_update);
  if (audit_) {
    audit_->event("crl.updated", {{"url", url}, {"issuer", src.issuer}, {"this_update", std::to_string(src.this_update)},
                                  {"next_update", std::to_string(src.next_update)}});
  }
  debouncer_.request_now(static_cast<int64_t>(loop_.now_ms()));
  on_reload_due("crl");
}

void Runtime::on_bundle_fetched(const std::string& peer, core::FetchResult&& result) {
  if (stopping_) return;
  const config::PeerConfig* cfg = nullptr;
  for (const auto& p : snap_->config.peers) {
    if (p.org == peer && p.refresh_bundle) cfg = &p;
  }
  if (!cfg) return;
  // What the peer's ca_bundle file holds now (it is what the snapshot trusts).
  auto in_use = certwatch::load_trust_anchor_file(cfg->ca_bundle);
  PeerBundles::Outcome o = bundles_.accept(peer, std::move(result),
                                           in_use ? *in_use : std::vector<certwatch::TrustAnchor>{}, unix_now());
  bundle_refresher_->schedule(peer, o.next_fetch_ms);
  if (!o.error.empty()) {
    LogLine("warn", "peer bundle fetch failed").str("peer_org", peer).str("error", o.error)
        .num("retry_ms", static_cast<int64_t>(o.next_fetch_ms));
    return;
  }
  if (!o.changed) return;
  if (auto written = config::write_file_atomically(cfg->ca_bundle, certwatch::trust_anchors_to_pem(o.anchors));
      !written) {
    LogLine("error", "peer bundle not stored").str("peer_org", peer).str("error", base::to_string(written.error()));
    return;
  }
  LogLine("info", "peer bundle updated").str("peer_org", peer).str("before", o.before_digest)
      .str("after", o.after_digest).num("anchors", static_cast<int64_t>(o.anchors.size()));
  if (audit_) {
    audit_->event("peer.bundle_updated", {{"peer", peer}, {"file", cfg->ca_bundle}, {"before_sha256", o.before_digest},
                                          {"after_sha256", o.after_digest}, {"anchors", std::to_string(o.anchors.size())}});
  }
  debouncer_.request_now(static_cast<int64_t>(loop_.now_ms()));
  on_reload_due("peer bundle");
}

}  // namespace fedproxy::app
