// What `fedproxy check` warns about trust (SPEC §3): a tls.ca_bundle that
// holds several CAs while some peer has no anchors of its own. Every CA of
// that bundle can then issue a certificate with such a peer's URI SAN and be
// accepted as that peer. A warning, not a problem: the dual-CA window of a
// rotation is legitimate, and a single-organisation setup is too.
#pragma once

#include <string>
#include <vector>

#include "proxy/app/snapshot.hpp"

namespace fedproxy::app {

std::vector<std::string> shared_ca_bundle_warnings(const Snapshot& snapshot);

}  // namespace fedproxy::app
