// Loading a peer's trust anchors (see the header).
#include "certwatch/trust_anchors.hpp"

#include <utility>

#include <mbedtls/base64.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "certwatch/cert_bundle.hpp"
#include "certwatch/cert_io.hpp"
#include "certwatch/read_file.hpp"
#include "certwatch/digest.hpp"

namespace fedproxy::certwatch {

namespace {

// Owns a parsed chain for the length of one load.
struct ParsedChain {
  ParsedChain() { mbedtls_x509_crt_init(&chain); }
  ~ParsedChain() { mbedtls_x509_crt_free(&chain); }
  ParsedChain(const ParsedChain&) = delete;
  ParsedChain& operator=(const ParsedChain&) = delete;
  mbedtls_x509_crt chain;
};

using Anchors = base::Result<std::vector<TrustAnchor>>;

base::Error failure(std::string error) { return base::make_error(base::Errc::invalid, std::move(error)); }

// Parsed certificates → anchors. A leaf is refused: an end-entity
// certificate in a trust store is accepted by mbedTLS only as itself, with no
// CA in its chain, so it could never match and would only hide a mistake.
Anchors from_certs(const std::string& data) {
  if (psa_crypto_init() != PSA_SUCCESS) {
    return base::make_error(base::Errc::unavailable, "cannot initialise PSA crypto");
  }
  ParsedChain parsed;
  int count = 0;
  std::string err;
  if (!parse_certs(data, &parsed.chain, "CA certificate", &count, err)) return failure(err);
  std::vector<TrustAnchor> anchors;
  int index = 0;
  for (const mbedtls_x509_crt* c = &parsed.chain; c != nullptr && c->raw.p != nullptr; c = c->next) {
    ++index;
    TrustAnchor a;
    char subject[1024];
    int n = mbedtls_x509_dn_gets(subject, sizeof subject, &c->subject);
    if (n > 0) a.subject.assign(subject, static_cast<size_t>(n));
    if (mbedtls_x509_crt_get_ca_istrue(c) != 1) {
      return failure("certificate #" + std::to_string(index) + " (" + a.subject +
                     ") is not a CA certificate (no basicConstraints cA:TRUE); a trust anchor is the "
                     "CA that issues the peer's certificates");
    }
    a.der.assign(reinterpret_cast<const char*>(c->raw.p), c->raw.len);
    a.der_sha256 = sha256_hex(c->raw.p, c->raw.len);
    a.spki_sha256 = sha256_hex(c->pk_raw.p, c->pk_raw.len);
    a.not_after = x509_time_to_unix(c->valid_to);
    merge_trust_anchors(anchors, {a});
  }
  return anchors;
}

}  // namespace

Anchors load_trust_anchor_file(const std::string& path) {
  std::string data, err;
  if (!read_file(path, data, nullptr, err)) return base::make_error(base::Errc::io, std::move(err));
  return from_certs(data);
}

Anchors parse_trust_anchor_pem(const std::string& pem) {
  if (!looks_pem(pem)) return failure("no CA certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)");
  return from_certs(pem);
}

Anchors parse_trust_anchor_base64_der(const std::string& base64) {
  const auto* src = reinterpret_cast<const unsigned char*>(base64.data());
  size_t len = 0;
  // First call: the decoded length (or a syntax error).
  int ret = mbedtls_base64_decode(nullptr, 0, &len, src, base64.size());
  if (ret == MBEDTLS_ERR_BASE64_INVALID_CHARACTER || len == 0) {
    return failure("is not base64 of a DER certificate");
  }
  std::string der(len, '\0');
  ret = mbedtls_base64_decode(reinterpret_cast<unsigned char*>(der.data()), der.size(), &len, src,
                              base64.size());
  if (ret != 0) return failure("is not base64 of a DER certificate");
  der.resize(len);
  if (static_cast<unsigned char>(der[0]) != 0x30) return failure("is not base64 of a DER certificate");
  return from_certs(der);
}

Anchors parse_trust_anchor_der(const std::string& der) { return from_certs(der); }

std::string trust_anchors_to_pem(const std::vector<TrustAnchor>& anchors) {
  std::string out;
  for (const TrustAnchor& a : anchors) {
    const auto* der = reinterpret_cast<const unsigned char*>(a.der.data());
    size_t len = 0;
    mbedtls_base64_encode(nullptr, 0, &len, der, a.der.size());
    std::string b64(len, '\0');
    if (mbedtls_base64_encode(reinterpret_cast<unsigned char*>(b64.data()), b64.size(), &len, der, a.der.size()) != 0) {
      continue;
    }
    b64.resize(len);
    out += "-----BEGIN CERTIFICATE-----\n";
    for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
    out += "-----END CERTIFICATE-----\n";
  }
  return out;
}

void merge_trust_anchors(std::vector<TrustAnchor>& into, const std::vector<TrustAnchor>& more) {
  for (const TrustAnchor& a : more) {
    bool seen = false;
    for (const TrustAnchor& b : into) seen = seen || b.der_sha256 == a.der_sha256;
    if (!seen) into.push_back(a);
  }
}

}  // namespace fedproxy::certwatch
