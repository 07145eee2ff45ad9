#include "proxy/app/snapshot.hpp"

#include <cstdlib>
#include <cstring>

#include "certwatch/bundle_keys.hpp"
#include "certwatch/cert_bundle.hpp"
#include "config/manifest.hpp"
#include "proxy/app/admin_tokens.hpp"
#include "proxy/app/node_bundle.hpp"
#include "proxy/app/effective_config.hpp"
#include "proxy/app/peer_anchors.hpp"
#include "proxy/app/trust_checks.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::app {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && (!std::strcmp(v, "1") || !std::strcmp(v, "true") || !std::strcmp(v, "yes"));
}

namespace {

struct Problems {
  SnapshotResult& result;
  void add(const std::string& file, const std::string& text) {
    if (result.problems.empty()) result.first_file = file;
    result.problems.push_back(file + ": " + text);
  }
};

// The node's trust bundle: node.ca_bundle, or the CAs of tls.ca_bundle that
// issued the node certificate. None found: no bundle is served (a warning;
// peers then configure our CA by hand, as before).
bool build_node_bundle(const config::Config& cfg, Snapshot& snap, Problems& problems) {
  const certwatch::CertBundle& bundle = snap.server_tls->bundle();
  if (!cfg.node.ca_bundle.empty()) {
    auto loaded = certwatch::load_trust_anchor_file(cfg.node.ca_bundle);
    if (!loaded) {
      problems.add(cfg.node.ca_bundle, "node.ca_bundle: " + loaded.message());
      return false;
    }
    snap.node_anchors = std::move(loaded).value();
  } else {
    snap.node_anchors = certwatch::issuers_of(*bundle.cert_chain(), *bundle.ca_chain());
  }
  if (snap.node_anchors.empty()) return true;
  auto json = spiffe_bundle_json(snap.node_anchors, cfg.node.bundle_refresh_hint_s);
  if (!json) {
    problems.add(cfg.node.ca_bundle.empty() ? cfg.tls.ca_bundle : cfg.node.ca_bundle, json.message());
    return false;
  }
  snap.node_bundle = std::make_shared<const std::string>(std::move(json).value());
  return true;
}

// The trust store is tls.ca_bundle plus every peer's own anchors.
bool build_tls(const config::Config& cfg, const std::vector<certwatch::TrustAnchor>& peer_anchors,
               const std::map<std::string, std::string>& fetched_crls, Snapshot& snap, Problems& problems) {
  certwatch::CertFiles files;
  files.cert = cfg.tls.cert;
  files.key = cfg.tls.key;
  files.ca_bundle = cfg.tls.ca_bundle;
  files.crl = cfg.tls.crl;
  for (const std::string& url : cfg.tls.crl_urls) {
    auto it = fetched_crls.find(url);
    if (it == fetched_crls.end()) {
      ++files.crl_urls_without_crl;
    } else {
      files.fetched_crls.push_back(it->second);
    }
  }
  files.allow_insecure_key_perms = env_flag("FEDPROXY_ALLOW_INSECURE_KEY_PERMS");
  auto loaded = certwatch::load_cert_bundle(files, peer_anchors);
  if (!loaded) {
    problems.add(loaded.error().file, loaded.message());
    return false;
  }
  tls::TlsOptions options;
  options.session_tickets = cfg.tls.session_tickets;
  options.ticket_lifetime_s = cfg.tls.ticket_rotation_ms / 1000;
  options.crl_fail_open = cfg.tls.crl_fail_open;
  auto server = tls::TlsContext::create(tls::Role::server, *loaded, options);
  if (!server) {
    problems.add(cfg.tls.cert, server.message());
    return false;
  }
  auto client = tls::TlsContext::create(tls::Role::client, *loaded, options);
  if (!client) {
    problems.add(cfg.tls.cert, client.message());
    return false;
  }
  snap.server_tls = std::move(server).value();
  snap.client_tls = std::move(client).value();
  return build_node_bundle(cfg, snap, problems);
}

void build_admin_access(const config::Config& cfg, Snapshot& snap, Problems& problems) {
  for (auto& loaded : load_admin_tokens(cfg.admin.tokens, env_flag("FEDPROXY_ALLOW_INSECURE_KEY_PERMS"))) {
    if (loaded) {
      snap.admin.tokens.push_back(std::move(loaded).value());
    } else {
      problems.add(loaded.error().file, loaded.message());
    }
  }
  snap.admin.allowed_hosts = cfg.admin.allowed_hosts;
}

// A TCP admin listener without a token: anything that can connect to it (any
// local user, a container on the same network) may reload and read /status.
std::vector<std::string> admin_warnings(const config::Config& cfg) {
  const auto& admin = cfg.admin;
  if (!admin.listen || admin.listen->kind != config::Endpoint::Kind::tcp || !admin.tokens.empty()) return {};
  return {"admin.listen: the admin listener " + admin.listen->text +
          " has no token: anyone who can connect to it may POST /reload and read /status; set "
          "admin.token_file (or listen on a unix socket)"};
}

}  // namespace

SnapshotResult build_snapshot(const std::string& config_path, bool tls_only, const SnapshotInputs& inputs) {
  SnapshotResult result;
  Problems problems{result};
  // The config file with the management API's state overlaid (SPEC §12).
  auto loaded =
      load_effective_config(config_path, config::EnvOverrides::from_environment(), inputs.state_override).result;
  for (const auto& p : loaded.problems) problems.add(config_path, p.to_string());
  if (!loaded.config) {
    // Report what the policy compiler finds in the valid parts too, so one
    // `fedproxy check` lists every problem.
    if (loaded.partial && !(loaded.partial->peers.empty() && loaded.partial->grants.empty())) {
      auto manifests = config::load_manifest_dir(loaded.partial->manifests_dir);
      for (const auto& p : policy::compile_policy(*loaded.partial, manifests.manifests).problems) {
        problems.add(config_path, p.to_string());
      }
    }
    return result;
  }

  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(*loaded.config);
  const config::Config& cfg = snap->config;
  result.warnings = admin_warnings(cfg);

  // Manifests first: their trust bundles are anchors of the TLS trust store.
  // (tls_only: the peers' ca_bundle files only; there may be no manifests yet.)
  config::ManifestDirResult manifests;
  if (!tls_only) {
    manifests = config::load_manifest_dir(cfg.manifests_dir);
    for (const auto& p : manifests.problems) problems.add(cfg.manifests_dir, p.to_string());
  }
  LoadedPeerAnchors anchors = load_peer_anchors(cfg, manifests.manifests);
  for (const auto& p : anchors.problems) problems.add(p.file, p.text);

  if (!cfg.tls.cert.empty()) {
    static const std::map<std::string, std::string> kNoCrls;
    build_tls(cfg, anchors.all, inputs.fetched_crls ? *inputs.fetched_crls : kNoCrls, *snap, problems);
  } else if (!env_flag("FEDPROXY_INSECURE")) {
    problems.add(config_path, "tls: tls.cert and tls.key are not set; refusing to run without TLS unless FEDPROXY_INSECURE=1");
  } else if (!cfg.ingress.listen.is_loopback() && !env_flag("FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK")) {
    problems.add(config_path, "ingress.listen: insecure mode on non-loopback address " + cfg.ingress.listen.text +
                                  " needs FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK=1");
  }

  if (tls_only) {
    if (result.problems.empty()) result.snapshot = std::move(snap);
    return result;
  }

  build_admin_access(cfg, *snap, problems);

  // A node with a state file may start with no peer yet: it gets them
  // through the management API or a join (SPEC §12, §13), and refuses every
  // request until then.
  const bool peers_to_come = !cfg.state_path.empty() && !cfg.authenticate_only;
  if (cfg.peers.empty() && cfg.grants.empty() && !peers_to_come) {
    if (!cfg.authenticate_only) {
      problems.add(config_path,
                   "peers: no peers configured, so every request would be refused; add peers, routes and grants "
                   "(docs/policy.md), set state.path to add them at run time (fedproxy peer join, the "
                   "management API), or set \"authenticate_only\": true to forward every client whose "
                   "certificate verifies");
    }
  } else {
    // What peers without anchors of their own fall back to (insecure mode: no chains, nothing).
    static const std::vector<std::string> kNone;
    const auto& ca_bundle_spki = snap->server_tls ? snap->server_tls->bundle().ca_spki_sha256() : kNone;
    auto compiled = policy::compile_policy(cfg, manifests.manifests, anchors.by_peer, ca_bundle_spki);
    for (const auto& p : compiled.problems) problems.add(config_path, p.to_string());
    snap->policy = compiled.snapshot;
  }

  config::Manifest self;
  self.org = cfg.node.org;
  self.entity_uri = cfg.node.entity_uri;
  self.endpoints = cfg.node.endpoints;
  if (snap->server_tls) {
    // The pin others may set on us: SHA-256 of our certificate's DER.
    self.tls_cert_fingerprint = tls::identity_from_cert(*snap->server_tls->bundle().cert_chain()).der_sha256;
  }
  snap->node_manifest = std::make_shared<const std::string>(config::manifest_to_json(self));

  if (!result.problems.empty()) return result;
  for (auto& w : shared_ca_bundle_warnings(*snap)) result.warnings.push_back(std::move(w));
  if (snap->server_tls && !snap->node_bundle) {
    result.warnings.push_back("tls.ca_bundle: no CA in it issued the node certificate, so no trust bundle is served at "
                              "/.well-known/fedproxy-bundle.json; set node.ca_bundle to the CA(s) that issue this "
                              "node's certificates");
  }
  result.snapshot = std::move(snap);
  return result;
}

}  // namespace fedproxy::app
