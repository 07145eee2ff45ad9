#include "proxy/app/cert_expiry.hpp"

#include <algorithm>

#include <mbedtls/x509_crt.h>

#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::app {

namespace {
// A CA listed twice in one bundle is one series, not a duplicate.
void add(std::vector<CertExpiry>& out, CertExpiry e) {
  auto same = [&e](const CertExpiry& o) { return o.cert == e.cert && o.kind == e.kind && o.org == e.org; };
  if (std::none_of(out.begin(), out.end(), same)) out.push_back(std::move(e));
}
}  // namespace

std::vector<CertExpiry> cert_expiries(const Snapshot& snap, const std::map<std::string, PeerCertSeen>& peers_seen) {
  std::vector<CertExpiry> out;
  if (snap.server_tls) {
    const certwatch::CertBundle& bundle = snap.server_tls->bundle();
    add(out, {"node", "node", "", bundle.cert_subject(), bundle.cert_not_after()});
    for (const mbedtls_x509_crt* ca = bundle.ca_chain(); ca != nullptr && ca->raw.len != 0; ca = ca->next) {
      tls::PeerIdentity id = tls::identity_from_cert(*ca);
      add(out, {"ca:" + id.der_sha256, "ca", "", id.subject, id.not_after});
    }
  }
  if (!snap.policy) return out;
  for (const auto& peer : snap.policy->peers()) {
    for (const auto& a : peer.trust_anchors) {
      add(out, {"ca:" + a.sha256, "peer_anchor", peer.slug, a.subject, a.not_after});
    }
    if (auto it = peers_seen.find(peer.slug); it != peers_seen.end()) {
      add(out, {"peer:" + peer.slug, "peer", peer.slug, it->second.subject, it->second.not_after});
    }
  }
  return out;
}

}  // namespace fedproxy::app
