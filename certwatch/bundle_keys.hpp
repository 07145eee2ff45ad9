// A node's trust bundle in the SPIFFE format (SPEC §3, issue 17): which CAs
// issue the node's own certificates, and each CA as a JWK with its x5c. The
// JSON is written by the caller; what leaves here is plain strings.
#pragma once

#include <string>
#include <vector>

#include <mbedtls/x509_crt.h>

#include "certwatch/trust_anchors.hpp"
#include "proxy/base/result.hpp"

namespace fedproxy::certwatch {

// The CAs of `cas` that `chain` (a leaf and the intermediates after it)
// verifies against, each tried alone. Validity dates are not judged: a
// bundle names the issuer even of a certificate about to be replaced.
std::vector<TrustAnchor> issuers_of(const mbedtls_x509_crt& chain, const mbedtls_x509_crt& cas);

// One JWK of a SPIFFE bundle (RFC 7517 members; binary values base64url
// without padding, x5c standard base64 of the DER).
struct BundleKey {
  std::string kty;    // "EC" or "RSA"
  std::string crv;    // EC: "P-256", "P-384", "P-521"
  std::string x, y;   // EC
  std::string n, e;   // RSA
  std::string x5c;
};
base::Result<BundleKey> bundle_key_of(const TrustAnchor& anchor);

}  // namespace fedproxy::certwatch
