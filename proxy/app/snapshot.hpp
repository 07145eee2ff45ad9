// Everything a reload swaps, built completely to the side from the files:
// config, peer manifests, the compiled policy and the TLS contexts. The same
// function serves `run` (start: any problem is fatal), `check` (print every
// problem) and reloads (a problem keeps the old snapshot).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "certwatch/trust_anchors.hpp"
#include "config/state.hpp"
#include "config/config.hpp"
#include "policy/policy.hpp"
#include "proxy/core/admin_gate.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::app {

struct Snapshot {
  config::Config config;
  std::shared_ptr<const tls::TlsContext> server_tls;  // null in insecure mode
  std::shared_ptr<const tls::TlsContext> client_tls;
  std::shared_ptr<const policy::Snapshot> policy;     // null with authenticate_only
  std::shared_ptr<const std::string> node_manifest;   // served at /.well-known/fedproxy-manifest.json
  std::shared_ptr<const std::string> node_bundle;     // served at /.well-known/fedproxy-bundle.json (null: insecure)
  std::vector<certwatch::TrustAnchor> node_anchors;   // what node_bundle holds
  core::AdminAccess admin;                            // admin tokens (digests) and allowed hosts
};

struct SnapshotResult {
  std::shared_ptr<const Snapshot> snapshot;  // null when problems is non-empty
  std::vector<std::string> problems;         // "<file>: <where>: <message>", every one found
  std::string first_file;                    // the file of the first problem
  // Allowed but risky ("admin.listen: ...", a shared multi-CA bundle):
  // `check` prints them, `run` logs them at start and after each reload.
  std::vector<std::string> warnings;
};

// tls_only: config and certificates only, no manifests or policy (for
// `manifest fetch`, which runs before the peer it fetches can be compiled).
// What a snapshot is built from besides the files.
struct SnapshotInputs {
  // The management API's candidate state instead of the state file (see
  // effective_config.hpp).
  const config::State* state_override = nullptr;
  // The CRLs of tls.crl_urls fetched so far (url → CRL, see crl_store.hpp);
  // a URL without one makes ingress fail closed until it has.
  const std::map<std::string, std::string>* fetched_crls = nullptr;
};
SnapshotResult build_snapshot(const std::string& config_path, bool tls_only = false, const SnapshotInputs& inputs = {});

bool env_flag(const char* name);  // "1", "true", "yes"

}  // namespace fedproxy::app
