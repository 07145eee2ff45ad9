// The node's trust bundle (issue 17, SPEC §3): the CAs that issue this
// node's certificates, in the SPIFFE trust bundle format (a JWKS whose keys
// have "use": "x509-svid" and the CA in "x5c"), with "spiffe_refresh_hint"
// telling peers how often to fetch it again. Served on ingress at
// /.well-known/fedproxy-bundle.json; peers keep our anchors fresh from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "certwatch/trust_anchors.hpp"
#include "proxy/base/result.hpp"

namespace fedproxy::app {

// The bundle document. No "spiffe_sequence": it must only grow, and the
// replicas of a node share no counter; readers compare the anchors instead.
base::Result<std::string> spiffe_bundle_json(const std::vector<certwatch::TrustAnchor>& anchors,
                                             uint32_t refresh_hint_s);

}  // namespace fedproxy::app
