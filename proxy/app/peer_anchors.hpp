// Each configured peer's own trust anchors (SPEC §3), loaded for one
// snapshot: from peers[].ca_bundle (a PEM file) and from the trust_bundle of
// the peer's manifest (PEM text or a SPIFFE bundle), the union when both are
// there. Read at start and at reload only, never on the data path.
#pragma once

#include <string>
#include <vector>

#include "certwatch/trust_anchors.hpp"
#include "policy/anchors.hpp"
#include "config/config.hpp"
#include "config/manifest.hpp"

namespace fedproxy::app {

struct LoadedPeerAnchors {
  std::vector<certwatch::TrustAnchor> all;  // every peer's, once each: joins the TLS trust store
  policy::PeerAnchors by_peer;              // what policy compiles (and /status shows)
  struct Problem {
    std::string file;  // the anchor file or the manifest
    std::string text;  // "peers[0].ca_bundle: ..." / "trust_bundle.keys[1].x5c[0]: ..."
  };
  std::vector<Problem> problems;  // an anchor source that cannot be used: the snapshot is refused
};

LoadedPeerAnchors load_peer_anchors(const config::Config& config, const std::vector<config::Manifest>& manifests);

}  // namespace fedproxy::app
