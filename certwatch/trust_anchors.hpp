// A peer's own trust anchors (SPEC §3 "Trust anchors per peer"): the CA
// certificates that peer's certificates must chain to, so that a CA trusted
// for one organisation cannot speak for another. They come from a PEM file
// (peers[].ca_bundle) or from the peer's manifest (trust_bundle: PEM text, or
// the base64 DER certificates of a SPIFFE bundle's x509-svid keys). Parsed
// and checked here (X.509 is certwatch's job); what leaves is plain data: the
// DER for the TLS trust store and the fingerprints policy matches on.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/base/result.hpp"

namespace fedproxy::certwatch {

struct TrustAnchor {
  std::string der;          // the CA certificate
  std::string subject;      // as mbedtls_x509_dn_gets prints it
  std::string der_sha256;   // 64 lowercase hex
  std::string spki_sha256;  // of its SubjectPublicKeyInfo: what a chain is matched on
  int64_t not_after = 0;    // unix seconds
};

// Each loader gives one source's anchors, or why there are none: every
// certificate must parse and be a CA (basicConstraints cA), and there must be
// at least one. The error is one sentence, the caller names the source; code
// io (a file cannot be read) or invalid.

// A PEM file of one or more CA certificates (or a single DER certificate).
base::Result<std::vector<TrustAnchor>> load_trust_anchor_file(const std::string& path);
// PEM text, as a manifest's "trust_bundle" string carries it.
base::Result<std::vector<TrustAnchor>> parse_trust_anchor_pem(const std::string& pem);
// One base64 DER certificate, as a SPIFFE bundle's "x5c" entry carries it.
base::Result<std::vector<TrustAnchor>> parse_trust_anchor_base64_der(const std::string& base64);

// DER certificate(s), as a CA store holds them.
base::Result<std::vector<TrustAnchor>> parse_trust_anchor_der(const std::string& der);

// PEM "CERTIFICATE" blocks of the anchors, in order (a ca_bundle file).
std::string trust_anchors_to_pem(const std::vector<TrustAnchor>& anchors);

// Appends those of `more` not already in `into` (same DER).
void merge_trust_anchors(std::vector<TrustAnchor>& into, const std::vector<TrustAnchor>& more);

}  // namespace fedproxy::certwatch
