// Test PKI generated at test time with mbedTLS x509write: CAs, leaf
// certificates with URI SANs, an optional grant-OID extension, chosen
// validity and key types. Files go into a private temporary directory.
// CRLs: mbedTLS cannot write them, so make_crl() drives the `openssl` CLI
// (tests skip the CRL cases when it is not installed).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "certwatch/cert_bundle.hpp"

namespace fedproxy::testing {

enum class KeyType { p256, p384, rsa2048, rsa1024 };

// PEM private key of the given type. RSA keys are generated once per process
// and reused (RSA key generation is slow); EC keys are fresh every call.
std::string generate_key_pem(KeyType type);

// A directory under $TMPDIR (mkdtemp) removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes content to <dir>/<name> with the given mode; returns the path.
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) const;

 private:
  std::string path_;
};

// Unix seconds now.
int64_t now_unix();

struct CertSpec {
  std::string subject = "CN=node,O=fedproxy-test";
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  std::optional<std::string> grant_id;   // extension 1.3.6.1.4.1.99999.1, UTF8String
  bool grant_critical = false;           // mbedTLS peers then fail the handshake
  int64_t not_before = 0;                // 0 = now - 1 hour
  int64_t not_after = 0;                 // 0 = now + 1 day
  KeyType key_type = KeyType::p256;
  std::string key_pem;                   // use this key instead of generating one
  bool client_auth = true;               // extendedKeyUsage clientAuth
  bool server_auth = true;               // extendedKeyUsage serverAuth
  bool is_ca = false;
};

struct Issued {
  std::string cert_pem;
  std::string key_pem;
  std::string serial_hex;  // uppercase hex, as `openssl ca` writes it
};

class TestCa {
 public:
  // Self-signed CA (EC P-256 unless told otherwise).
  explicit TestCa(const std::string& cn = "fedproxy test CA", KeyType key_type = KeyType::p256);
  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  const std::string& subject() const { return subject_; }
  // Certificate signed by this CA.
  Issued issue(const CertSpec& spec) const;

 private:
  std::string subject_;
  std::string cert_pem_;
  std::string key_pem_;
};

// Cert + key + CA bundle (+ CRL) written into dir, ready for load_cert_bundle.
certwatch::CertFiles write_node_files(const TempDir& dir, const std::string& prefix, const Issued& node,
                                      const std::string& ca_bundle_pem, const std::string& crl_pem = "");

// Loads, and on failure returns nullptr with the error in *error.
std::shared_ptr<const certwatch::CertBundle> load_bundle(const certwatch::CertFiles& files,
                                                         std::string* error = nullptr);

// Convenience: a bundle for `node` trusting `ca_bundle_pem`.
std::shared_ptr<const certwatch::CertBundle> make_bundle(const TempDir& dir, const std::string& prefix,
                                                         const Issued& node, const std::string& ca_bundle_pem,
                                                         const std::string& crl_pem = "");

// --- openssl CLI helpers (CRLs, Ed25519) ---
bool openssl_available();

// PEM CRL signed by `ca` revoking the given certificates. expired: thisUpdate
// and nextUpdate in the past (2020). nullopt when openssl failed.
std::optional<std::string> make_crl(const TempDir& dir, const TestCa& ca, const std::vector<Issued>& revoked,
                                    bool expired = false);

// Self-signed Ed25519 certificate and key (PEM) made with openssl.
std::optional<Issued> make_ed25519_self_signed(const TempDir& dir);

}  // namespace fedproxy::testing
