// What the TLS handshake proved about the peer. Filled from the verified
// leaf certificate on a full handshake, or restored from a sealed session
// ticket on resumption (mbedTLS drops the peer cert when resuming).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct mbedtls_x509_crt;
struct mbedtls_x509_crl;

namespace fedproxy::tls {

struct PeerIdentity {
  bool present = false;                  // a verified certificate was seen
  std::vector<std::string> uri_sans;     // every URI SAN, in certificate order
  std::string der_sha256;                // 64 lowercase hex of the leaf DER
  std::string spki_sha256;               // 64 lowercase hex of SubjectPublicKeyInfo DER
  std::optional<std::string> grant_id;   // extension 1.3.6.1.4.1.99999.1 (UTF8String)
  std::string subject;                   // RFC 4514-ish, as mbedtls_x509_dn_gets prints
  int64_t not_after = 0;                 // unix seconds
  bool resumed = false;                  // restored from a session ticket
  std::string serial_raw;                // certificate serial (DER content bytes)
  std::string issuer_raw;                // issuer Name, DER: for CRL lookups
  // SHA-256 (64 lowercase hex) of the SubjectPublicKeyInfo of every CA
  // certificate of the verified chain, trust anchor included (leaf
  // excluded), from the top down: matched against the peer's own anchors.
  std::vector<std::string> chain_spki_sha256;

  // Compact binary form sealed into session tickets, and its inverse.
  std::string serialize() const;
  static std::optional<PeerIdentity> deserialize(const std::string& bytes);
};

// Extract identity fields from a parsed certificate (used by the engine and by
// `fedproxy cert inspect`). Never fails: missing parts stay empty.
PeerIdentity identity_from_cert(const mbedtls_x509_crt& crt);

// Whether the certificate behind this identity is listed on crl (a chain of
// CRLs; issuer matched by DER name). Used to close established connections
// of a peer revoked after its handshake.
bool is_revoked(const PeerIdentity& peer, const mbedtls_x509_crl* crl);

}  // namespace fedproxy::tls
