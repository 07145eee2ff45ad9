#include "policy/anchors.hpp"

#include <algorithm>

namespace fedproxy::policy {

bool chain_reaches_anchor(std::span<const std::string> chain_spki,
                          std::span<const std::string> anchor_spki) noexcept {
  for (const std::string& key : chain_spki) {
    if (std::binary_search(anchor_spki.begin(), anchor_spki.end(), key)) return true;
  }
  return false;
}

std::vector<std::string> peer_only_anchor_spki(const PeerAnchors& anchors,
                                               std::span<const std::string> ca_bundle_spki) {
  std::vector<std::string> out;
  for (const auto& [peer, list] : anchors) {
    for (const AnchorInfo& a : list) {
      if (std::find(ca_bundle_spki.begin(), ca_bundle_spki.end(), a.spki_sha256) == ca_bundle_spki.end()) {
        out.push_back(a.spki_sha256);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace fedproxy::policy
