// A node's trust bundle keys (see the header).
#include "certwatch/bundle_keys.hpp"

#include <mbedtls/base64.h>
#include <mbedtls/bignum.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <cstdint>

namespace fedproxy::certwatch {

namespace {

// Owns one parsed certificate.
struct OneCert {
  OneCert() { mbedtls_x509_crt_init(&crt); }
  ~OneCert() { mbedtls_x509_crt_free(&crt); }
  OneCert(const OneCert&) = delete;
  OneCert& operator=(const OneCert&) = delete;
  mbedtls_x509_crt crt;
};

std::string base64(const unsigned char* p, size_t n) {
  size_t len = 0;
  mbedtls_base64_encode(nullptr, 0, &len, p, n);
  std::string out(len, '\0');
  if (mbedtls_base64_encode(reinterpret_cast<unsigned char*>(out.data()), out.size(), &len, p, n) != 0) return {};
  out.resize(len);
  return out;
}

std::string base64url(const unsigned char* p, size_t n) {
  std::string s = base64(p, n);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

// Big-endian bytes without leading zeros (JWK integers are minimal).
std::string minimal(const unsigned char* p, size_t n) {
  while (n > 1 && *p == 0) ++p, --n;
  return base64url(p, n);
}

}  // namespace

std::vector<TrustAnchor> issuers_of(const mbedtls_x509_crt& chain, const mbedtls_x509_crt& cas) {
  std::vector<TrustAnchor> out;
  constexpr uint32_t kDates = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
  for (const mbedtls_x509_crt* ca = &cas; ca != nullptr && ca->raw.p != nullptr; ca = ca->next) {
    OneCert alone;
    if (mbedtls_x509_crt_parse_der(&alone.crt, ca->raw.p, ca->raw.len) != 0) continue;
    uint32_t flags = 0;
    mbedtls_x509_crt_verify(const_cast<mbedtls_x509_crt*>(&chain), &alone.crt, nullptr, nullptr, &flags,
                            nullptr, nullptr);
    if ((flags & ~kDates) != 0) continue;
    auto anchors = parse_trust_anchor_der(std::string(reinterpret_cast<const char*>(ca->raw.p), ca->raw.len));
    if (anchors) merge_trust_anchors(out, *anchors);
  }
  return out;
}

base::Result<BundleKey> bundle_key_of(const TrustAnchor& anchor) {
  OneCert c;
  const auto* der = reinterpret_cast<const unsigned char*>(anchor.der.data());
  if (mbedtls_x509_crt_parse_der(&c.crt, der, anchor.der.size()) != 0) {
    return base::make_error(base::Errc::invalid, "trust anchor " + anchor.subject + " does not parse");
  }
  BundleKey k;
  k.x5c = base64(der, anchor.der.size());
  const mbedtls_pk_type_t type = mbedtls_pk_get_type(&c.crt.pk);
  if (type == MBEDTLS_PK_ECKEY || type == MBEDTLS_PK_ECDSA) {
    // mbedtls_pk_write_pubkey writes backwards from the end: the point 04||X||Y.
    unsigned char buf[200];
    unsigned char* p = buf + sizeof buf;
    int len = mbedtls_pk_write_pubkey(&p, buf, &c.crt.pk);
    const size_t bits = mbedtls_pk_get_bitlen(&c.crt.pk);
    const size_t size = (bits + 7) / 8;
    if (len <= 0 || static_cast<size_t>(len) != 1 + 2 * size || p[0] != 0x04) {
      return base::make_error(base::Errc::invalid, "trust anchor " + anchor.subject + ": unsupported EC key");
    }
    k.kty = "EC";
    k.crv = bits == 256 ? "P-256" : bits == 384 ? "P-384" : bits == 521 ? "P-521" : "";
    if (k.crv.empty()) return base::make_error(base::Errc::invalid, "trust anchor " + anchor.subject + ": unsupported curve");
    k.x = base64url(p + 1, size);
    k.y = base64url(p + 1 + size, size);
    return k;
  }
  if (type == MBEDTLS_PK_RSA) {
    const mbedtls_rsa_context* rsa = mbedtls_pk_rsa(c.crt.pk);
    std::string n(mbedtls_rsa_get_len(rsa), '\0'), e(8, '\0');
    auto* np = reinterpret_cast<unsigned char*>(n.data());
    auto* ep = reinterpret_cast<unsigned char*>(e.data());
    if (mbedtls_rsa_export_raw(rsa, np, n.size(), nullptr, 0, nullptr, 0, nullptr, 0, ep, e.size()) != 0) {
      return base::make_error(base::Errc::invalid, "trust anchor " + anchor.subject + ": RSA key does not export");
    }
    k.kty = "RSA";
    k.n = minimal(np, n.size());
    k.e = minimal(ep, e.size());
    return k;
  }
  return base::make_error(base::Errc::invalid, "trust anchor " + anchor.subject + ": unsupported key type");
}

}  // namespace fedproxy::certwatch
