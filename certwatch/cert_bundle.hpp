// CertBundle: the node certificate chain, its private key, the trusted CA
// bundle and the optional CRL, loaded from files and validated together, and
// the handshake's trust store: the CA bundle plus every peer's own anchors.
// Immutable once built; a reload builds a new one to the side.
// Below it: certificate helpers shared with `fedproxy check` and
// `fedproxy cert inspect` (chain check, file parsing, details, dates).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "certwatch/trust_anchors.hpp"
#include "proxy/base/result.hpp"

namespace fedproxy::certwatch {

struct CertFiles {
  std::string cert;       // PEM chain, leaf first
  std::string key;        // PEM or DER private key
  std::string ca_bundle;  // PEM, one or more CAs (dual-trust window)
  std::string crl;        // "" = none; PEM or DER, may hold several CRLs
  // CRLs fetched from tls.crl_urls (PEM or DER each), already checked with
  // check_fetched_crl, and how many of those URLs have none yet.
  std::vector<std::string> fetched_crls;
  size_t crl_urls_without_crl = 0;
  bool allow_insecure_key_perms = false;  // accept a world-readable key file
};

class CertBundle {
 public:
  CertBundle();
  ~CertBundle();
  CertBundle(const CertBundle&) = delete;
  CertBundle& operator=(const CertBundle&) = delete;

  mbedtls_x509_crt* cert_chain() const { return &cert_; }
  mbedtls_pk_context* key() const { return &key_; }
  mbedtls_x509_crt* ca_chain() const { return &ca_; }  // tls.ca_bundle alone
  // What handshakes verify against: tls.ca_bundle and every peer's own
  // anchors. A chain to a peer's anchor passes the handshake; whether that
  // anchor may speak for the peer the certificate names is policy's check.
  mbedtls_x509_crt* trust_store() const { return &trust_; }
  // nullptr when no CRL is configured.
  mbedtls_x509_crl* crl() const { return has_crl_ ? &crl_ : nullptr; }
  // A configured CRL URL has not delivered a CRL yet: handshakes fail closed
  // as with a stale CRL (unless crl_fail_open).
  bool crl_incomplete() const { return files_.crl_urls_without_crl > 0; }

  int ca_count() const { return ca_count_; }  // in tls.ca_bundle
  // SHA-256 of each tls.ca_bundle CA's SubjectPublicKeyInfo (64 lowercase hex).
  const std::vector<std::string>& ca_spki_sha256() const { return ca_spki_sha256_; }
  // Earliest nextUpdate over the loaded CRLs (unix seconds), nullopt without CRL.
  std::optional<int64_t> crl_next_update() const { return crl_next_update_; }
  int64_t cert_not_after() const { return not_after_; }  // unix seconds, leaf
  const std::string& cert_subject() const { return subject_; }
  const CertFiles& files() const { return files_; }

 private:
  friend struct CertBundleLoader;
  // mutable: mbedTLS APIs take non-const pointers even for read-only use.
  mutable mbedtls_x509_crt cert_;
  mutable mbedtls_pk_context key_;
  mutable mbedtls_x509_crt ca_;
  mutable mbedtls_x509_crt trust_;
  mutable mbedtls_x509_crl crl_;
  bool has_crl_ = false;
  int ca_count_ = 0;
  std::vector<std::string> ca_spki_sha256_;
  std::optional<int64_t> crl_next_update_;
  int64_t not_after_ = 0;
  std::string subject_;
  CertFiles files_;
};

// Load and validate: files readable, cert/CA/CRL parse, key parses and matches
// the leaf cert, key type supported (ECDSA P-256/P-384, RSA >= 2048; Ed25519 is
// refused with a message saying the TLS library does not support it), key file
// not world-readable unless allowed. CA bundle must hold at least one CA.
// Calls psa_crypto_init() itself (idempotent). peer_anchors join the CA
// bundle in trust_store().
// On failure: error().message is one human sentence ("private key does not
// match certificate ..."), error().file the file it is about ("" when none:
// a file not configured); code io (a file cannot be read), refused (key file
// world-readable), unavailable (PSA crypto), else invalid.
base::Result<std::shared_ptr<const CertBundle>> load_cert_bundle(
    const CertFiles& files, const std::vector<TrustAnchor>& peer_anchors = {});

// An X.509 time (always UTC) as unix seconds; 0 for an unset time.
int64_t x509_time_to_unix(const mbedtls_x509_time& t);

// Unix seconds as ISO 8601 UTC, "2030-03-17T17:46:40Z".
std::string unix_to_iso8601(int64_t t);

// Whole days from now to not_after, rounded down: -1 as soon as it expired.
int64_t days_left(int64_t not_after, int64_t now);

// Whether the bundle's node certificate chains to its CA bundle (with the
// intermediates of the cert file, and not revoked by its CRL). Validity
// dates of the node certificate and of the CRL are not judged here (check
// reports them itself). "" when it verifies, else why not. Not part of
// load_cert_bundle: a CA rotation may legitimately drop the node's own issuer
// from the bundle before the node certificate is reissued.
std::string verify_node_chain(const CertBundle& bundle);

// A CRL fetched from a URL, before it may replace the one in use: it parses
// (PEM or DER, exactly one CRL) and is signed by a CA of `cas` (mbedTLS would
// otherwise fail every handshake on it: anyone on the path of a plain-HTTP
// fetch could lock peers out). Its nextUpdate (unix seconds, 0 = none) and
// thisUpdate on success; the error is one sentence.
struct FetchedCrl {
  int64_t this_update = 0;
  int64_t next_update = 0;
  std::string issuer;
};
base::Result<FetchedCrl> check_fetched_crl(const std::string& data, const mbedtls_x509_crt& cas);

// Certificates read from one file (PEM, several allowed, or one DER), for
// `fedproxy cert inspect`: parsed only, nothing verified.
struct CertList {
  CertList();
  ~CertList();
  CertList(const CertList&) = delete;
  CertList& operator=(const CertList&) = delete;
  mbedtls_x509_crt chain;  // first certificate; ->next for the rest
  int count = 0;
};

// On failure the message is one sentence, e.g. "cannot read: No such file or
// directory" (the caller names the file); code io or invalid.
base::Result<std::shared_ptr<const CertList>> load_cert_file(const std::string& path);

// What `cert inspect` shows beyond tls::PeerIdentity.
struct CertDetails {
  std::string issuer;                 // as mbedtls_x509_dn_gets prints it
  std::vector<std::string> dns_sans;  // in certificate order
  std::vector<std::string> ip_sans;   // printed as text (IPv4 dotted, IPv6 RFC 5952)
  int64_t not_before = 0;             // unix seconds
  std::string key_type;               // "EC", "RSA", else mbedTLS's name
  std::string key_curve;              // "P-256", "P-384", ... for EC keys, else ""
  size_t key_bits = 0;
};
CertDetails cert_details(const mbedtls_x509_crt& crt);

}  // namespace fedproxy::certwatch
