// Trust anchors per peer (SPEC §3), as policy sees them: plain data that the
// certificate layer produced from the peer's `ca_bundle` file and its
// manifest's `trust_bundle` (policy never parses X.509), and the one check a
// verified chain must pass for a peer that has anchors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace fedproxy::policy {

struct AnchorInfo {
  std::string subject;      // the CA certificate's subject
  std::string sha256;       // SHA-256 of its DER, 64 lowercase hex
  std::string spki_sha256;  // SHA-256 of its SubjectPublicKeyInfo: what chains are matched on
  int64_t not_after = 0;    // unix seconds
  std::string source;       // "ca_bundle" (peers[].ca_bundle) or "manifest" (trust_bundle)
  std::string file;         // the file it was read from
};

// Each peer's anchors by peer slug; a peer that is absent (or has an empty
// list) has none of its own and falls back to tls.ca_bundle.
using PeerAnchors = std::map<std::string, std::vector<AnchorInfo>, std::less<>>;

// Whether a verified chain reaches one of a peer's anchors: some CA of the
// chain (its key hash) is an anchor's key. Matching by key rather than by
// certificate is sound (a chain through a certificate holding the anchor's
// key was signed with the anchor's private key) and survives an anchor
// re-issued with the same key. anchor_spki must be sorted. Allocates nothing.
bool chain_reaches_anchor(std::span<const std::string> chain_spki,
                          std::span<const std::string> anchor_spki) noexcept;

// The keys of CAs that are trusted only as some peer's own anchor (not in
// tls.ca_bundle, whose key hashes are ca_bundle_spki): the handshake accepts
// them, but they may speak for their peer and nobody else. A peer without
// anchors of its own falls back to tls.ca_bundle, so its chain must not pass
// through one of these. Sorted and unique.
std::vector<std::string> peer_only_anchor_spki(const PeerAnchors& anchors,
                                               std::span<const std::string> ca_bundle_spki);

}  // namespace fedproxy::policy
