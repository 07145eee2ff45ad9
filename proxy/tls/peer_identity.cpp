// Peer identity: extraction from a parsed certificate and the compact binary
// form that is sealed into session tickets.
#include "proxy/tls/peer_identity.hpp"

#include "certwatch/cert_bundle.hpp"
#include "certwatch/digest.hpp"

#include <cstring>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

namespace fedproxy::tls {

namespace {

using certwatch::sha256_hex;

constexpr char kGrantOid[] = "1.3.6.1.4.1.99999.1";

struct GrantScan {
  std::optional<std::string> grant;
};

// Called by mbedtls for every extension it does not know itself.
int grant_ext_cb(void* p_ctx, mbedtls_x509_crt const*, mbedtls_x509_buf const* oid, int,
                 const unsigned char* p, const unsigned char* end) {
  auto* scan = static_cast<GrantScan*>(p_ctx);
  char oid_str[64];
  int n = mbedtls_oid_get_numeric_string(oid_str, sizeof oid_str, oid);
  if (n < 0 || std::strcmp(oid_str, kGrantOid) != 0) return 0;  // not ours: ignore
  unsigned char* q = const_cast<unsigned char*>(p);
  size_t len = 0;
  // The spec says UTF8String; PrintableString / IA5String hold the same text.
  for (int tag : {MBEDTLS_ASN1_UTF8_STRING, MBEDTLS_ASN1_PRINTABLE_STRING, MBEDTLS_ASN1_IA5_STRING}) {
    unsigned char* r = q;
    if (mbedtls_asn1_get_tag(&r, end, &len, tag) == 0 && r + len == end) {
      scan->grant = std::string(reinterpret_cast<const char*>(r), len);
      return 0;
    }
  }
  return 0;  // malformed value: treated as absent (never fails the parse)
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

struct Reader {
  const std::string& b;
  size_t pos = 0;
  bool ok = true;
  bool u8(uint8_t& v) {
    if (!ok || pos + 1 > b.size()) return ok = false;
    v = static_cast<uint8_t>(b[pos++]);
    return true;
  }
  bool u32(uint32_t& v) {
    if (!ok || b.size() - pos < 4) return ok = false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(b[pos++]);
    return true;
  }
  bool str(std::string& s) {
    uint32_t n = 0;
    if (!u32(n) || b.size() - pos < n) return ok = false;
    s.assign(b, pos, n);
    pos += n;
    return true;
  }
};

constexpr uint8_t kFormatVersion = 3;  // 3: the chain's CA key hashes
constexpr uint32_t kMaxSans = 1024;
constexpr uint32_t kMaxChain = 64;  // mbedTLS verifies at most 8 intermediates

}  // namespace

PeerIdentity identity_from_cert(const mbedtls_x509_crt& crt) {
  PeerIdentity id;
  // URI SANs, in certificate order.
  for (const mbedtls_x509_sequence* cur = &crt.subject_alt_names; cur != nullptr; cur = cur->next) {
    if (cur->buf.p == nullptr || cur->buf.len == 0) continue;
    mbedtls_x509_subject_alternative_name san;
    std::memset(&san, 0, sizeof san);
    if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0) continue;
    if (san.type == MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER) {
      id.uri_sans.emplace_back(reinterpret_cast<const char*>(san.san.unstructured_name.p),
                               san.san.unstructured_name.len);
    }
    mbedtls_x509_free_subject_alt_name(&san);
  }
  id.der_sha256 = sha256_hex(crt.raw.p, crt.raw.len);
  id.spki_sha256 = sha256_hex(crt.pk_raw.p, crt.pk_raw.len);

  // Grant id: mbedtls skips unknown non-critical extensions without keeping
  // them, so re-parse the DER with an extension callback.
  if (crt.raw.p != nullptr && crt.raw.len > 0) {
    GrantScan scan;
    mbedtls_x509_crt tmp;
    mbedtls_x509_crt_init(&tmp);
    if (mbedtls_x509_crt_parse_der_with_ext_cb(&tmp, crt.raw.p, crt.raw.len, /*make_copy=*/0,
                                               grant_ext_cb, &scan) == 0) {
      id.grant_id = std::move(scan.grant);
    }
    mbedtls_x509_crt_free(&tmp);
  }

  char buf[1024];
  int n = mbedtls_x509_dn_gets(buf, sizeof buf, &crt.subject);
  if (n > 0) id.subject.assign(buf, static_cast<size_t>(n));
  id.not_after = certwatch::x509_time_to_unix(crt.valid_to);
  id.serial_raw.assign(reinterpret_cast<const char*>(crt.serial.p), crt.serial.len);
  id.issuer_raw.assign(reinterpret_cast<const char*>(crt.issuer_raw.p), crt.issuer_raw.len);
  return id;
}

// Layout (all integers big-endian):
//   u8 version(=3) | u8 flags (1=present, 2=has grant)
//   u32 n_sans | n x str | str der_sha256 | str spki_sha256 | [str grant]
//   | str subject | u32 not_after_hi | u32 not_after_lo | str serial | str issuer
//   | u32 n_chain | n x str chain_spki_sha256
// str = u32 length + bytes. The `resumed` flag is not carried: it describes
// the connection, not the identity.
std::string PeerIdentity::serialize() const {
  std::string out;
  out.push_back(static_cast<char>(kFormatVersion));
  uint8_t flags = (present ? 1 : 0) | (grant_id ? 2 : 0);
  out.push_back(static_cast<char>(flags));
  put_u32(out, static_cast<uint32_t>(uri_sans.size()));
  for (const auto& s : uri_sans) put_str(out, s);
  put_str(out, der_sha256);
  put_str(out, spki_sha256);
  if (grant_id) put_str(out, *grant_id);
  put_str(out, subject);
  uint64_t na = static_cast<uint64_t>(not_after);
  put_u32(out, static_cast<uint32_t>(na >> 32));
  put_u32(out, static_cast<uint32_t>(na & 0xffffffffu));
  put_str(out, serial_raw);
  put_str(out, issuer_raw);
  put_u32(out, static_cast<uint32_t>(chain_spki_sha256.size()));
  for (const auto& h : chain_spki_sha256) put_str(out, h);
  return out;
}

std::optional<PeerIdentity> PeerIdentity::deserialize(const std::string& bytes) {
  Reader r{bytes};
  uint8_t version = 0, flags = 0;
  if (!r.u8(version) || version != kFormatVersion || !r.u8(flags) || (flags & ~3u) != 0) {
    return std::nullopt;
  }
  PeerIdentity id;
  id.present = (flags & 1) != 0;
  uint32_t n = 0;
  if (!r.u32(n) || n > kMaxSans) return std::nullopt;
  for (uint32_t i = 0; i < n; ++i) {
    std::string s;
    if (!r.str(s)) return std::nullopt;
    id.uri_sans.push_back(std::move(s));
  }
  if (!r.str(id.der_sha256) || !r.str(id.spki_sha256)) return std::nullopt;
  if (flags & 2) {
    std::string g;
    if (!r.str(g)) return std::nullopt;
    id.grant_id = std::move(g);
  }
  uint32_t hi = 0, lo = 0;
  if (!r.str(id.subject) || !r.u32(hi) || !r.u32(lo)) return std::nullopt;
  id.not_after = static_cast<int64_t>((static_cast<uint64_t>(hi) << 32) | lo);
  if (!r.str(id.serial_raw) || !r.str(id.issuer_raw)) return std::nullopt;
  if (!r.u32(n) || n > kMaxChain) return std::nullopt;
  for (uint32_t i = 0; i < n; ++i) {
    std::string h;
    if (!r.str(h)) return std::nullopt;
    id.chain_spki_sha256.push_back(std::move(h));
  }
  if (r.pos != bytes.size()) return std::nullopt;  // trailing garbage
  return id;
}

bool is_revoked(const PeerIdentity& peer, const mbedtls_x509_crl* crl) {
  if (!peer.present || peer.serial_raw.empty()) return false;
  for (const mbedtls_x509_crl* c = crl; c != nullptr && c->version != 0; c = c->next) {
    if (c->issuer_raw.len != peer.issuer_raw.size() ||
        std::memcmp(c->issuer_raw.p, peer.issuer_raw.data(), peer.issuer_raw.size()) != 0) {
      continue;
    }
    for (const mbedtls_x509_crl_entry* e = &c->entry; e != nullptr; e = e->next) {
      if (e->serial.len == peer.serial_raw.size() && e->serial.len != 0 &&
          std::memcmp(e->serial.p, peer.serial_raw.data(), e->serial.len) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace fedproxy::tls
