// Building the TLS snapshot (cert bundle + mbedTLS config) from the config:
// the same code path at start, in `check` and on reload.
#pragma once

#include <memory>
#include <string>

#include "policy/config.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::app {

struct TlsSnapshotResult {
  std::shared_ptr<const tls::TlsContext> server;  // ingress
  std::shared_ptr<const tls::TlsContext> client;  // egress
  std::string file;   // the file an error is about
  std::string error;  // "" on success
};

TlsSnapshotResult build_tls_snapshot(const policy::Config& config);

bool env_flag(const char* name);  // "1", "true", "yes"

}  // namespace fedproxy::app
