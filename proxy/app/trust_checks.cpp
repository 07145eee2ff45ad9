#include "proxy/app/trust_checks.hpp"

namespace fedproxy::app {

std::vector<std::string> shared_ca_bundle_warnings(const Snapshot& snapshot) {
  if (!snapshot.server_tls || !snapshot.policy) return {};
  const int cas = snapshot.server_tls->bundle().ca_count();
  if (cas <= 1) return {};
  std::string without;
  for (const auto& peer : snapshot.policy->peers()) {
    if (peer.trust_anchors.empty()) without += (without.empty() ? "" : ", ") + peer.slug;
  }
  if (without.empty()) return {};
  return {snapshot.config.tls.ca_bundle + ": tls.ca_bundle holds " + std::to_string(cas) +
          " CAs and peers without trust anchors of their own (" + without +
          ") fall back to it, so any of these CAs can issue a certificate that is accepted as them; "
          "name each peer's CA with peers[].ca_bundle or its manifest's trust_bundle (docs/operations.md, "
          "\"Trust anchors per peer\")"};
}

}  // namespace fedproxy::app
