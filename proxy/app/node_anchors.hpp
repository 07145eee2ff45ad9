// The CA(s) that issued this node's certificate: the CAs of tls.ca_bundle the
// node certificate chains to (each tried alone). What a join pins and what
// each side hands the other as its trust anchors (SPEC §13).
// (On main, Snapshot::node_anchors serves this; this function is the join
// branch's stand-in for it.)
#pragma once

#include <string>
#include <vector>

#include "certwatch/cert_bundle.hpp"

namespace fedproxy::app {

struct NodeAnchor {
  std::string pem;     // the CA certificate, PEM
  std::string sha256;  // SHA-256 of its DER, 64 lowercase hex: the join pin
};

std::vector<NodeAnchor> node_anchors(const certwatch::CertBundle& bundle);

// The anchors' PEM blocks, concatenated.
std::string anchors_pem(const std::vector<NodeAnchor>& anchors);

}  // namespace fedproxy::app
