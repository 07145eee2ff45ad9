#include "proxy/app/peer_anchors.hpp"

#include "proxy/base/result.hpp"

namespace fedproxy::app {

namespace {

class AnchorCollector {
 public:
  explicit AnchorCollector(LoadedPeerAnchors& out) : out_(out) {}

  // One source's anchors for peer `org`, or its problem.
  void add(const std::string& org, const base::Result<std::vector<certwatch::TrustAnchor>>& r, const char* source,
           const std::string& file, const std::string& where) {
    if (!r.ok()) {
      out_.problems.push_back({file, where + ": " + r.message()});
      return;
    }
    std::vector<policy::AnchorInfo>& mine = out_.by_peer[org];
    for (const certwatch::TrustAnchor& a : *r) {
      bool seen = false;
      for (const policy::AnchorInfo& b : mine) seen = seen || b.sha256 == a.der_sha256;
      if (!seen) mine.push_back({a.subject, a.der_sha256, a.spki_sha256, a.not_after, source, file});
    }
    certwatch::merge_trust_anchors(out_.all, *r);
  }

 private:
  LoadedPeerAnchors& out_;
};

const config::Manifest* manifest_of(const std::vector<config::Manifest>& manifests, const std::string& org) {
  for (const config::Manifest& m : manifests) {
    if (m.org == org) return &m;
  }
  return nullptr;
}

}  // namespace

LoadedPeerAnchors load_peer_anchors(const config::Config& config, const std::vector<config::Manifest>& manifests) {
  LoadedPeerAnchors out;
  AnchorCollector collect(out);
  for (size_t i = 0; i < config.peers.size(); ++i) {
    const config::PeerConfig& peer = config.peers[i];
    if (!peer.ca_bundle.empty()) {
      collect.add(peer.org, certwatch::load_trust_anchor_file(peer.ca_bundle), "ca_bundle", peer.ca_bundle,
                  "peers[" + std::to_string(i) + "].ca_bundle");
    }
    const config::Manifest* m = manifest_of(manifests, peer.org);
    if (m == nullptr || !m->trust_bundle) continue;
    if (!m->trust_bundle->pem.empty()) {
      collect.add(peer.org, certwatch::parse_trust_anchor_pem(m->trust_bundle->pem), "manifest", m->source,
                  "trust_bundle");
    }
    for (const auto& authority : m->trust_bundle->x509_authorities) {
      collect.add(peer.org, certwatch::parse_trust_anchor_base64_der(authority.base64), "manifest", m->source,
                  authority.where);
    }
  }
  return out;
}

}  // namespace fedproxy::app
