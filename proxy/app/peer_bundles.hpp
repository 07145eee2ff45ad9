// Peers' trust bundles kept current (issue 17): for each peer with
// `refresh_bundle`, the bundle its node serves at
// /.well-known/fedproxy-bundle.json is fetched over mTLS — so it is
// authenticated by the very anchors it may replace — on the bundle's
// spiffe_refresh_hint. Pure: a fetch result and the anchors in use come in;
// whether to rewrite the peer's ca_bundle file, with what, and when to fetch
// again go out. A failed or invalid fetch keeps the anchors in use.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "certwatch/trust_anchors.hpp"
#include "proxy/core/http_fetch.hpp"

namespace fedproxy::app {

struct PeerBundleState {
  int64_t last_attempt = 0;
  int64_t last_success = 0;   // a valid bundle arrived (changed or not)
  int64_t last_change = 0;    // the anchors were replaced
  int64_t refresh_hint_s = 0; // of the last valid bundle (0: none given)
  uint64_t failures = 0;
  std::string last_error;     // of the latest attempt
};

class PeerBundles {
 public:
  static constexpr int64_t kDefaultHintS = 300;  // a bundle without a hint
  static constexpr uint64_t kRetryMs = 30000;    // after a failure (capped by the hint)

  struct Outcome {
    bool changed = false;
    std::vector<certwatch::TrustAnchor> anchors;  // the new anchors when changed
    std::string before_digest, after_digest;       // anchors_digest of old and new
    uint64_t next_fetch_ms = 0;
    std::string error;
  };
  Outcome accept(const std::string& peer, core::FetchResult&& result,
                 const std::vector<certwatch::TrustAnchor>& in_use, int64_t now_unix);
  void forget_others(const std::vector<std::string>& peers);
  const std::map<std::string, PeerBundleState>& states() const { return states_; }

 private:
  std::map<std::string, PeerBundleState> states_;
};

// SHA-256 (hex) over the sorted DER digests: equal for the same set of CAs.
std::string anchors_digest(const std::vector<certwatch::TrustAnchor>& anchors);

}  // namespace fedproxy::app
