// What `fedproxy check` finds about the node certificate beyond what loading
// it proves (parses, key matches, key type supported): it chains to the
// configured CA bundle, is not revoked by the CRL, and is valid now. Only
// `check` runs these; `run` and reloads do not refuse a node certificate for
// them (a CA rotation can drop its issuer from the bundle for a while).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fedproxy::app {

// Expiring sooner than this is a warning (the /status threshold too).
constexpr int64_t kCertWarningDays = 30;

struct CertCheckFindings {
  std::vector<std::string> problems;  // "<file>: <text>": check fails
  std::vector<std::string> warnings;  // "<file>: <text>": check still passes
};

// Loads the config and its certificates again; finds nothing when they do
// not load (build_snapshot already reported why) or in insecure mode.
CertCheckFindings check_node_certificate(const std::string& config_path, int64_t now);

}  // namespace fedproxy::app
