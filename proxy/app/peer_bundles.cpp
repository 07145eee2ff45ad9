#include "proxy/app/peer_bundles.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "certwatch/digest.hpp"
#include "config/manifest.hpp"

namespace fedproxy::app {

std::string anchors_digest(const std::vector<certwatch::TrustAnchor>& anchors) {
  std::vector<std::string> digests;
  for (const auto& a : anchors) digests.push_back(a.der_sha256);
  std::sort(digests.begin(), digests.end());
  std::string joined;
  for (const auto& d : digests) joined += d + "\n";
  return certwatch::sha256_hex(reinterpret_cast<const unsigned char*>(joined.data()), joined.size());
}

PeerBundles::Outcome PeerBundles::accept(const std::string& peer, core::FetchResult&& result,
                                         const std::vector<certwatch::TrustAnchor>& in_use, int64_t now_unix) {
  PeerBundleState& st = states_[peer];
  st.last_attempt = now_unix;
  Outcome out;
  const int64_t hint = st.refresh_hint_s > 0 ? st.refresh_hint_s : kDefaultHintS;
  out.next_fetch_ms = std::min<uint64_t>(static_cast<uint64_t>(hint) * 1000, kRetryMs);
  auto fail = [&](std::string why) {
    out.error = std::move(why);
    ++st.failures;
    st.last_error = out.error;
    return out;
  };
  if (!result.error.empty()) return fail(result.error);
  if (result.status != 200) return fail("answered HTTP " + std::to_string(result.status));
  std::vector<config::ConfigProblem> problems;
  auto bundle = config::parse_spiffe_bundle(result.body, &problems);
  if (!bundle) return fail("not a trust bundle: " + (problems.empty() ? std::string("?") : problems.front().to_string()));
  std::vector<certwatch::TrustAnchor> anchors;
  for (const auto& authority : bundle->bundle.x509_authorities) {
    auto parsed = certwatch::parse_trust_anchor_base64_der(authority.base64);
    if (!parsed) return fail(authority.where + " " + parsed.message());
    certwatch::merge_trust_anchors(anchors, *parsed);
  }
  st.last_success = now_unix;
  st.last_error.clear();
  st.refresh_hint_s = bundle->refresh_hint_s;
  const int64_t next = std::clamp<int64_t>(bundle->refresh_hint_s > 0 ? bundle->refresh_hint_s : kDefaultHintS, 1, 86400);
  out.next_fetch_ms = static_cast<uint64_t>(next) * 1000;
  out.before_digest = anchors_digest(in_use);
  out.after_digest = anchors_digest(anchors);
  if (out.before_digest != out.after_digest) {
    out.changed = true;
    st.last_change = now_unix;
    out.anchors = std::move(anchors);
  }
  return out;
}

void PeerBundles::forget_others(const std::vector<std::string>& peers) {
  std::set<std::string> keep(peers.begin(), peers.end());
  std::erase_if(states_, [&](const auto& kv) { return !keep.count(kv.first); });
}

}  // namespace fedproxy::app
