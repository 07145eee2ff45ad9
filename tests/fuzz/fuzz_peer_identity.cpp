// libFuzzer target: peer identity extraction (proxy/tls/peer_identity).
//
// The server's verify callback runs identity_from_cert() on the client's
// leaf certificate before it knows whether the chain verifies, so an
// unauthenticated client controls that input; fuzz_tls_server cannot reach
// it (TLS 1.3 encrypts the Certificate message). Session tickets carry
// PeerIdentity::serialize() output, read back with deserialize().
//
// Input: [mode] then bytes.
//   mode even  bytes = a DER certificate: mbedtls parses it; if it does,
//              identity_from_cert(), then serialize → deserialize must give
//              the same identity back, and is_revoked() against no CRL is
//              false
//   mode odd   bytes = a serialized identity: deserialize(); if it parses,
//              serialize() must give the same bytes back (one encoding only)
//
// Seeds: FUZZ_IDENTITY_WRITE_SEEDS=DIR ./fuzz_peer_identity writes DER
// certificates (with URI SANs and the grant extension) and their serialized
// identities, generated in memory, into DIR and exits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "proxy/tls/peer_identity.hpp"
#include "proxy/tls/tls_engine.hpp"
#include "tests/fuzz/fuzz_common.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;

namespace {

bool same(const tls::PeerIdentity& a, const tls::PeerIdentity& b) {
  return a.present == b.present && a.uri_sans == b.uri_sans && a.der_sha256 == b.der_sha256 &&
         a.spki_sha256 == b.spki_sha256 && a.grant_id == b.grant_id && a.subject == b.subject &&
         a.not_after == b.not_after && a.serial_raw == b.serial_raw && a.issuer_raw == b.issuer_raw;
}

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void check_roundtrip(const tls::PeerIdentity& id) {
  const std::string bytes = id.serialize();
  const std::optional<tls::PeerIdentity> back = tls::PeerIdentity::deserialize(bytes);
  FUZZ_CHECK(back.has_value(), "serialized identity does not deserialize");
  FUZZ_CHECK(same(*back, id), "identity changes through serialize/deserialize");
}

void from_cert(const uint8_t* data, size_t size) {
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  if (mbedtls_x509_crt_parse_der(&crt, data, size) == 0) {
    tls::PeerIdentity id = tls::identity_from_cert(crt);
    FUZZ_CHECK(is_hex64(id.der_sha256), "der_sha256 is not 64 lowercase hex");
    FUZZ_CHECK(id.spki_sha256.empty() || is_hex64(id.spki_sha256), "spki_sha256 is not 64 lowercase hex");
    FUZZ_CHECK(!id.present, "identity_from_cert claims a verified peer");
    FUZZ_CHECK(!tls::is_revoked(id, nullptr), "revoked without a CRL");
    check_roundtrip(id);
    id.present = true;
    check_roundtrip(id);
  }
  mbedtls_x509_crt_free(&crt);
}

void from_bytes(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::optional<tls::PeerIdentity> id = tls::PeerIdentity::deserialize(bytes);
  if (!id) return;
  FUZZ_CHECK(id->serialize() == bytes, "serialize(deserialize(x)) != x: two encodings of one identity");
}

// PEM → DER without parsing the certificate (mbedTLS refuses to parse one
// with a critical unknown extension, which is still a useful seed).
std::string pem_to_der(const std::string& pem) {
  mbedtls_pem_context ctx;
  mbedtls_pem_init(&ctx);
  size_t used = 0;
  std::string der;
  if (mbedtls_pem_read_buffer(&ctx, "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----",
                              reinterpret_cast<const unsigned char*>(pem.c_str()), nullptr, 0, &used) == 0) {
    size_t len = 0;
    const unsigned char* buf = mbedtls_pem_get_buffer(&ctx, &len);
    der.assign(reinterpret_cast<const char*>(buf), len);
  }
  mbedtls_pem_free(&ctx);
  return der;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_seeds(const std::string& dir) {
  testing::TestCa ca("fuzz federation CA", testing::KeyType::p256);
  struct Spec {
    const char* name;
    testing::CertSpec spec;
  };
  testing::CertSpec plain;
  plain.subject = "CN=partner node,O=partner-labs";
  plain.uri_sans = {"spiffe://partner-labs.example/nodes/primary"};
  testing::CertSpec grant = plain;
  grant.grant_id = "6f1c2b8e-3d4a-4f5b-9c7d-1e2f3a4b5c6d";
  testing::CertSpec many;
  many.subject = "CN=a\\,b+OU=x,O=\"quoted\",C=DE";
  many.uri_sans = {"spiffe://a.example/1", "urn:x:y", "https://b.example/p?q#f"};
  many.dns_sans = {"a.example", "*.b.example"};
  many.grant_id = "g";
  many.grant_critical = true;
  testing::CertSpec p384 = plain;
  p384.key_type = testing::KeyType::p384;
  p384.client_auth = false;
  const Spec specs[] = {{"cert-uri-san", plain}, {"cert-grant-ext", grant}, {"cert-many-sans", many},
                        {"cert-p384", p384}};
  for (const Spec& s : specs) {
    const std::string der = pem_to_der(ca.issue(s.spec).cert_pem);
    if (der.empty()) continue;
    write_file(dir + "/" + s.name, std::string(1, '\0') + der);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_der(&crt, reinterpret_cast<const unsigned char*>(der.data()), der.size()) == 0) {
      tls::PeerIdentity id = tls::identity_from_cert(crt);
      id.present = true;
      write_file(dir + "/ticket-" + s.name, std::string(1, '\1') + id.serialize());
    }
    mbedtls_x509_crt_free(&crt);
  }
  write_file(dir + "/ca-cert", std::string(1, '\0') + pem_to_der(ca.cert_pem()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!tls::init_crypto()) {
    std::fprintf(stderr, "fuzz_peer_identity: psa_crypto_init failed\n");
    std::exit(1);
  }
  if (const char* dir = std::getenv("FUZZ_IDENTITY_WRITE_SEEDS")) {
    write_seeds(dir);
    std::fprintf(stderr, "fuzz_peer_identity: seeds written to %s\n", dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] % 2 == 0)
    from_cert(data + 1, size - 1);
  else
    from_bytes(data + 1, size - 1);
  return 0;
}
