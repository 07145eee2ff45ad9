// CertBundle loading and validation (mbedTLS x509/pk only; no I/O beyond
// reading the four files once).
#include "certwatch/cert_bundle.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <utility>

#include "certwatch/cert_io.hpp"
#include "certwatch/read_file.hpp"
#include "certwatch/digest.hpp"

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/pem.h>
// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <mbedtls/rsa.h>
#include <mbedtls/x509.h>
#include <psa/crypto.h>

namespace fedproxy::certwatch {

namespace {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}


std::string key_type_error(const mbedtls_pk_context* key) {
  if (mbedtls_pk_can_do(key, MBEDTLS_PK_ECKEY)) {
    mbedtls_ecp_group_id gid = mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(*key));
    if (gid == MBEDTLS_ECP_DP_SECP256R1 || gid == MBEDTLS_ECP_DP_SECP384R1) return {};
    return "unsupported EC curve (" + std::to_string(mbedtls_pk_get_bitlen(key)) +
           " bits); only ECDSA P-256 and P-384 are supported";
  }
  if (mbedtls_pk_get_type(key) == MBEDTLS_PK_RSA) {
    size_t bits = mbedtls_pk_get_bitlen(key);
    if (bits >= 2048) return {};
    return "RSA key is " + std::to_string(bits) + " bits; at least 2048 bits are required";
  }
  return std::string("unsupported key type ") + mbedtls_pk_get_name(key) +
         "; use ECDSA P-256/P-384 or RSA >= 2048";
}

}  // namespace

CertBundle::CertBundle() {
  mbedtls_x509_crt_init(&cert_);
  mbedtls_pk_init(&key_);
  mbedtls_x509_crt_init(&ca_);
  mbedtls_x509_crt_init(&trust_);
  mbedtls_x509_crl_init(&crl_);
}

CertBundle::~CertBundle() {
  mbedtls_x509_crt_free(&cert_);
  mbedtls_pk_free(&key_);
  mbedtls_x509_crt_free(&ca_);
  mbedtls_x509_crt_free(&trust_);
  mbedtls_x509_crl_free(&crl_);
}

struct CertBundleLoader {
  // tls.ca_bundle's certificates, then each peer anchor not already there.
  static bool build_trust_store(CertBundle& b, const std::vector<TrustAnchor>& peer_anchors, std::string& err) {
    std::set<std::string> seen;
    auto add = [&](const unsigned char* der, size_t len) {
      if (!seen.insert(sha256_hex(der, len)).second) return true;
      int ret = mbedtls_x509_crt_parse_der(&b.trust_, der, len);
      if (ret != 0) err = "cannot add a trust anchor to the trust store: " + mbed_error(ret);
      return ret == 0;
    };
    for (const mbedtls_x509_crt* c = &b.ca_; c != nullptr && c->raw.p != nullptr; c = c->next) {
      if (!add(c->raw.p, c->raw.len)) return false;
      b.ca_spki_sha256_.push_back(sha256_hex(c->pk_raw.p, c->pk_raw.len));
    }
    for (const TrustAnchor& a : peer_anchors) {
      if (!add(reinterpret_cast<const unsigned char*>(a.der.data()), a.der.size())) return false;
    }
    return true;
  }

  static base::Result<std::shared_ptr<const CertBundle>> load(const CertFiles& files,
                                                              const std::vector<TrustAnchor>& peer_anchors) {
    using base::Errc;
    auto fail = [](const std::string& file, std::string error, Errc code = Errc::invalid) {
      return base::make_error(code, std::move(error), file);
    };
    if (psa_crypto_init() != PSA_SUCCESS) return fail("", "cannot initialise PSA crypto", Errc::unavailable);
    if (files.cert.empty()) return fail("", "no certificate file configured");
    if (files.key.empty()) return fail("", "no private key file configured");
    if (files.ca_bundle.empty()) return fail("", "no CA bundle file configured");

    auto b = std::make_shared<CertBundle>();
    b->files_ = files;
    std::string data, err;

    // Node certificate chain, leaf first.
    if (!read_file(files.cert, data, nullptr, err)) return fail(files.cert, err, Errc::io);
    int n = 0;
    if (!parse_certs(data, &b->cert_, "certificate", &n, err)) return fail(files.cert, err);

    // Private key: permissions first (do not even parse a leaked key silently).
    mode_t mode = 0;
    if (!read_file(files.key, data, &mode, err)) return fail(files.key, err, Errc::io);
    if (std::string open = world_readable_error(mode, "private key"); !open.empty() && !files.allow_insecure_key_perms) {
      return fail(files.key, open, Errc::refused);
    }
    {
      const bool pem = looks_pem(data);
      int ret = mbedtls_pk_parse_key(&b->key_, reinterpret_cast<const unsigned char*>(data.c_str()),
                                     data.size() + (pem ? 1 : 0), nullptr, 0, mbedtls_psa_get_random,
                                     MBEDTLS_PSA_RANDOM_STATE);
      if (ret != 0) {
        // Decode PEM (if any) to look for an EdDSA OID in the key structure.
        std::string ed;
        if (pem) {
          for (const char* label : {"PRIVATE KEY", "PUBLIC KEY"}) {
            std::string begin = std::string("-----BEGIN ") + label + "-----";
            std::string end = std::string("-----END ") + label + "-----";
            size_t pos = data.find(begin);
            if (pos == std::string::npos) continue;
            mbedtls_pem_context pemctx;
            mbedtls_pem_init(&pemctx);
            size_t use_len = 0;
            if (mbedtls_pem_read_buffer(&pemctx, begin.c_str(), end.c_str(),
                                        reinterpret_cast<const unsigned char*>(data.c_str() + pos),
                                        nullptr, 0, &use_len) == 0) {
              size_t len = 0;
              const unsigned char* der = mbedtls_pem_get_buffer(&pemctx, &len);
              ed = eddsa_message(der, len);
            }
            mbedtls_pem_free(&pemctx);
            if (!ed.empty()) break;
          }
        } else {
          ed = eddsa_message(reinterpret_cast<const unsigned char*>(data.data()), data.size());
        }
        if (!ed.empty()) return fail(files.key, ed);
        if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || ret == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
          return fail(files.key, "private key is encrypted; passphrase-protected keys are not supported");
        }
        return fail(files.key, "cannot parse private key: " + mbed_error(ret));
      }
    }
    if (std::string e = key_type_error(&b->key_); !e.empty()) return fail(files.key, e);
    {
      int ret = mbedtls_pk_check_pair(&b->cert_.pk, &b->key_, mbedtls_psa_get_random,
                                      MBEDTLS_PSA_RANDOM_STATE);
      if (ret != 0) return fail(files.key, "private key does not match certificate " + files.cert);
    }

    // Trusted CAs (several during a CA rotation).
    if (!read_file(files.ca_bundle, data, nullptr, err)) return fail(files.ca_bundle, err, Errc::io);
    if (!parse_certs(data, &b->ca_, "CA certificate", &b->ca_count_, err)) return fail(files.ca_bundle, err);
    if (!build_trust_store(*b, peer_anchors, err)) return fail(files.ca_bundle, err);

    // CRL (optional): PEM (several allowed) or DER; then those fetched from URLs.
    if (!files.crl.empty()) {
      if (!read_file(files.crl, data, nullptr, err)) return fail(files.crl, err, Errc::io);
      const bool pem = looks_pem(data);
      int ret = mbedtls_x509_crl_parse(&b->crl_, reinterpret_cast<const unsigned char*>(data.c_str()),
                                       data.size() + (pem ? 1 : 0));
      if (ret != 0) return fail(files.crl, "cannot parse CRL: " + mbed_error(ret));
      b->has_crl_ = true;
    }
    for (const std::string& fetched : files.fetched_crls) {
      const bool pem = looks_pem(fetched);
      int ret = mbedtls_x509_crl_parse(&b->crl_, reinterpret_cast<const unsigned char*>(fetched.c_str()),
                                       fetched.size() + (pem ? 1 : 0));
      if (ret != 0) return fail("tls.crl_urls", "cannot parse a fetched CRL: " + mbed_error(ret));
      b->has_crl_ = true;
    }
    if (b->has_crl_) {
      for (const mbedtls_x509_crl* c = &b->crl_; c != nullptr; c = c->next) {
        if (c->version == 0 || c->next_update.year == 0) continue;  // empty slot / no nextUpdate
        int64_t t = x509_time_to_unix(c->next_update);
        if (!b->crl_next_update_ || t < *b->crl_next_update_) b->crl_next_update_ = t;
      }
    }

    b->not_after_ = x509_time_to_unix(b->cert_.valid_to);
    char subject[1024];
    int len = mbedtls_x509_dn_gets(subject, sizeof subject, &b->cert_.subject);
    if (len > 0) b->subject_.assign(subject, static_cast<size_t>(len));

    return std::shared_ptr<const CertBundle>(std::move(b));
  }
};

base::Result<std::shared_ptr<const CertBundle>> load_cert_bundle(const CertFiles& files,
                                                                 const std::vector<TrustAnchor>& peer_anchors) {
  return CertBundleLoader::load(files, peer_anchors);
}

int64_t x509_time_to_unix(const mbedtls_x509_time& t) {
  if (t.year == 0) return 0;
  return days_from_civil(t.year, static_cast<unsigned>(t.mon), static_cast<unsigned>(t.day)) * 86400 +
         t.hour * 3600 + t.min * 60 + t.sec;
}

std::string unix_to_iso8601(int64_t t) {
  std::time_t secs = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return std::to_string(t);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t days_left(int64_t not_after, int64_t now) {
  const int64_t d = not_after - now;
  return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

namespace {

// The node's own validity dates and the CRL's freshness are reported apart
// (expiry problems and warnings; crl_fail_open), so only trust is judged here.
int ignore_dates(void*, mbedtls_x509_crt*, int depth, uint32_t* flags) {
  if (depth == 0) *flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
  *flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCRL_EXPIRED | MBEDTLS_X509_BADCRL_FUTURE);
  return 0;
}

}  // namespace

std::string verify_node_chain(const CertBundle& bundle) {
  uint32_t flags = 0;
  int ret = mbedtls_x509_crt_verify(bundle.cert_chain(), bundle.ca_chain(), bundle.crl(), nullptr, &flags,
                                    ignore_dates, nullptr);
  if (ret == 0) return {};
  if (ret != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || flags == 0) return "cannot verify: " + mbed_error(ret);
  if (flags == MBEDTLS_X509_BADCERT_REVOKED) return "the certificate is revoked by the CRL " + bundle.files().crl;
  char info[512];
  int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
  // One line per flag from mbedTLS; joined to keep one line per problem.
  std::string why = n > 0 ? std::string(info, static_cast<size_t>(n)) : "verification failed";
  while (!why.empty() && why.back() == '\n') why.pop_back();
  for (size_t pos; (pos = why.find('\n')) != std::string::npos;) why.replace(pos, 1, "; ");
  return "does not chain to a CA in " + bundle.files().ca_bundle + ": " + why;
}

CertList::CertList() { mbedtls_x509_crt_init(&chain); }
CertList::~CertList() { mbedtls_x509_crt_free(&chain); }

base::Result<std::shared_ptr<const CertList>> load_cert_file(const std::string& path) {
  using base::Errc;
  if (psa_crypto_init() != PSA_SUCCESS) return base::make_error(Errc::unavailable, "cannot initialise PSA crypto");
  std::string data, err;
  auto list = std::make_shared<CertList>();
  if (!read_file(path, data, nullptr, err)) return base::make_error(Errc::io, std::move(err));
  if (!parse_certs(data, &list->chain, "certificate", &list->count, err)) {
    return base::make_error(Errc::invalid, std::move(err));
  }
  return std::shared_ptr<const CertList>(std::move(list));
}

namespace {

std::string curve_name(mbedtls_ecp_group_id gid) {
  switch (gid) {
    case MBEDTLS_ECP_DP_SECP256R1: return "P-256";
    case MBEDTLS_ECP_DP_SECP384R1: return "P-384";
    case MBEDTLS_ECP_DP_SECP521R1: return "P-521";
    default: {
      const mbedtls_ecp_curve_info* info = mbedtls_ecp_curve_info_from_grp_id(gid);
      return info != nullptr ? info->name : "unknown";
    }
  }
}

std::string ip_text(const mbedtls_x509_buf& ip) {
  char buf[INET6_ADDRSTRLEN];
  int family = ip.len == 4 ? AF_INET : ip.len == 16 ? AF_INET6 : 0;
  if (family == 0 || inet_ntop(family, ip.p, buf, sizeof buf) == nullptr) return "(invalid IP address)";
  return buf;
}

}  // namespace

CertDetails cert_details(const mbedtls_x509_crt& crt) {
  CertDetails d;
  char buf[1024];
  int n = mbedtls_x509_dn_gets(buf, sizeof buf, &crt.issuer);
  if (n > 0) d.issuer.assign(buf, static_cast<size_t>(n));
  for (const mbedtls_x509_sequence* cur = &crt.subject_alt_names; cur != nullptr; cur = cur->next) {
    if (cur->buf.p == nullptr || cur->buf.len == 0) continue;
    mbedtls_x509_subject_alternative_name san;
    std::memset(&san, 0, sizeof san);
    if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0) continue;
    if (san.type == MBEDTLS_X509_SAN_DNS_NAME) {
      d.dns_sans.emplace_back(reinterpret_cast<const char*>(san.san.unstructured_name.p),
                              san.san.unstructured_name.len);
    } else if (san.type == MBEDTLS_X509_SAN_IP_ADDRESS) {
      d.ip_sans.push_back(ip_text(san.san.unstructured_name));
    }
    mbedtls_x509_free_subject_alt_name(&san);
  }
  d.not_before = x509_time_to_unix(crt.valid_from);
  const mbedtls_pk_context* pk = &crt.pk;
  d.key_bits = mbedtls_pk_get_bitlen(pk);
  if (mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY)) {
    d.key_type = "EC";
    d.key_curve = curve_name(mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(*pk)));
  } else if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA) {
    d.key_type = "RSA";
  } else {
    d.key_type = mbedtls_pk_get_name(pk);
  }
  return d;
}

namespace {
// Owns one parsed CRL for the length of a check.
struct OneCrl {
  OneCrl() { mbedtls_x509_crl_init(&crl); }
  ~OneCrl() { mbedtls_x509_crl_free(&crl); }
  OneCrl(const OneCrl&) = delete;
  OneCrl& operator=(const OneCrl&) = delete;
  mbedtls_x509_crl crl;
};

// The CRL's signature, checked with `ca`'s key (what mbedTLS does inside
// mbedtls_x509_crt_verify, which has no public call for a CRL alone).
bool signed_by(const mbedtls_x509_crl& crl, const mbedtls_x509_crt& ca) {
  if (crl.issuer_raw.len != ca.subject_raw.len ||
      std::memcmp(crl.issuer_raw.p, ca.subject_raw.p, crl.issuer_raw.len) != 0) {
    return false;
  }
  const mbedtls_md_type_t md_type = crl.MBEDTLS_PRIVATE(sig_md);
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(md_type);
  if (md == nullptr) return false;
  unsigned char hash[MBEDTLS_MD_MAX_SIZE];
  if (mbedtls_md(md, crl.tbs.p, crl.tbs.len, hash) != 0) return false;
  return mbedtls_pk_verify_ext(crl.MBEDTLS_PRIVATE(sig_pk), crl.MBEDTLS_PRIVATE(sig_opts),
                               const_cast<mbedtls_pk_context*>(&ca.pk), md_type, hash, mbedtls_md_get_size(md),
                               crl.MBEDTLS_PRIVATE(sig).p, crl.MBEDTLS_PRIVATE(sig).len) == 0;
}
}  // namespace

base::Result<FetchedCrl> check_fetched_crl(const std::string& data, const mbedtls_x509_crt& cas) {
  if (psa_crypto_init() != PSA_SUCCESS) {
    return base::make_error(base::Errc::unavailable, "cannot initialise PSA crypto");
  }
  OneCrl parsed;
  const bool pem = looks_pem(data);
  int ret = mbedtls_x509_crl_parse(&parsed.crl, reinterpret_cast<const unsigned char*>(data.c_str()),
                                   data.size() + (pem ? 1 : 0));
  if (ret != 0) return base::make_error(base::Errc::invalid, "is not a CRL (PEM or DER): " + mbed_error(ret));
  if (parsed.crl.next != nullptr) {
    return base::make_error(base::Errc::invalid, "holds more than one CRL (a distribution point serves one)");
  }
  FetchedCrl out;
  char issuer[1024];
  int n = mbedtls_x509_dn_gets(issuer, sizeof issuer, &parsed.crl.issuer);
  if (n > 0) out.issuer.assign(issuer, static_cast<size_t>(n));
  bool trusted = false;
  for (const mbedtls_x509_crt* ca = &cas; ca != nullptr && ca->raw.p != nullptr && !trusted; ca = ca->next) {
    trusted = signed_by(parsed.crl, *ca);
  }
  if (!trusted) {
    return base::make_error(base::Errc::invalid,
                            "is not signed by a CA of tls.ca_bundle (issuer " + out.issuer + ")");
  }
  out.this_update = x509_time_to_unix(parsed.crl.this_update);
  out.next_update = parsed.crl.next_update.year == 0 ? 0 : x509_time_to_unix(parsed.crl.next_update);
  return out;
}

}  // namespace fedproxy::certwatch
