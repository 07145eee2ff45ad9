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

}  // namespace fedproxy::policy
