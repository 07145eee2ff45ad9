// Which certificates' expiry /metrics exports (fedproxy_cert_expiry_timestamp_seconds),
// one series each, from a bounded set: the node certificate, every CA of
// tls.ca_bundle, every configured peer's own trust anchors, and per
// configured peer org the latest certificate it presented.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proxy/app/metrics.hpp"
#include "proxy/app/snapshot.hpp"

namespace fedproxy::app {

struct CertExpiry {
  // "node" | "ca:<sha256 of the DER>" | "peer:<org>": what an alert names.
  std::string cert;
  std::string kind;     // node | ca | peer_anchor | peer
  std::string org;      // the peer org for peer_anchor and peer, "" otherwise
  std::string subject;  // as mbedtls_x509_dn_gets prints it
  int64_t not_after = 0;  // unix seconds
};

// Peers seen but no longer configured are left out.
std::vector<CertExpiry> cert_expiries(const Snapshot& snap, const std::map<std::string, PeerCertSeen>& peers_seen);

}  // namespace fedproxy::app
