#include <doctest/doctest.h>

#include <string>

#include <mbedtls/x509_crt.h>

#include "certwatch/cert_bundle.hpp"
#include "proxy/base/result.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;
using certwatch::CertFiles;
using certwatch::load_cert_bundle;

namespace {

struct Env {
  TempDir dir;
  TestCa ca{"federation CA"};
  Issued node;
  CertFiles files;
  Env() {
    CertSpec s;
    s.subject = "CN=acme node,O=acme";
    s.uri_sans = {"spiffe://acme.example/nodes/a"};
    s.not_after = 1900000000;  // 2030-03-17T17:46:40Z
    node = ca.issue(s);
    files = write_node_files(dir, "node", node, ca.cert_pem());
  }
};

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// A failed Result's parts for CHECKs, safe to call on a success too.
template <class T>
std::string why(const base::Result<T>& r) { return r.ok() ? "" : base::to_string(r.error()); }
template <class T>
std::string error_of(const base::Result<T>& r) { return r.ok() ? "(no error)" : r.message(); }
template <class T>
base::Errc code_of(const base::Result<T>& r) { return r.ok() ? base::Errc::unavailable : r.error().code; }
template <class T>
std::string file_of(const base::Result<T>& r) { return r.ok() ? "(no error)" : r.error().file; }

}  // namespace

TEST_CASE("good bundle") {
  Env env;
  auto r = load_cert_bundle(env.files);
  REQUIRE_MESSAGE(r.ok(), why(r));
  const auto& b = **r;
  CHECK(b.ca_count() == 1);
  CHECK(b.crl() == nullptr);
  CHECK_FALSE(b.crl_next_update().has_value());
  CHECK(b.cert_not_after() == 1900000000);
  CHECK(b.cert_subject() == "CN=acme node, O=acme");
  CHECK(b.files().cert == env.files.cert);
  CHECK(b.cert_chain()->raw.len > 0);
  CHECK(b.ca_chain()->raw.len > 0);
  CHECK(mbedtls_pk_get_type(b.key()) == MBEDTLS_PK_ECKEY);
}

TEST_CASE("chain file with leaf and intermediate; DER key") {
  Env env;
  // "intermediate": any second certificate after the leaf is kept in the chain.
  std::string chain = env.node.cert_pem + env.ca.cert_pem();
  CertFiles f = env.files;
  f.cert = env.dir.write("chain.crt", chain);
  auto r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((*r)->cert_chain()->next != nullptr);
  CHECK((*r)->cert_subject() == "CN=acme node, O=acme");
}

TEST_CASE("missing files name the file and the OS reason") {
  Env env;
  for (int which = 0; which < 4; ++which) {
    CertFiles f = env.files;
    std::string* slot = which == 0 ? &f.cert : which == 1 ? &f.key : which == 2 ? &f.ca_bundle : &f.crl;
    *slot = env.dir.path() + "/does-not-exist.pem";
    auto r = load_cert_bundle(f);
    CHECK(!r.ok());
    CHECK(file_of(r) == *slot);
    CHECK(code_of(r) == base::Errc::io);
    CHECK(error_of(r) == "cannot read: No such file or directory");
    CHECK(why(r) == *slot + ": cannot read: No such file or directory");
  }
}

TEST_CASE("empty and garbage files") {
  Env env;
  CertFiles f = env.files;
  f.cert = env.dir.write("empty.crt", "");
  auto r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.cert);
  CHECK(error_of(r) == "file is empty");

  f = env.files;
  f.cert = env.dir.write("garbage.crt", "this is not a certificate\n");
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.cert);
  CHECK(error_of(r) == "no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks or DER)");

  f = env.files;
  f.cert = env.dir.write("garbage.der", std::string("\x30\x03\x02\x01\x01", 5));
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.cert);
  CHECK(contains(error_of(r), "cannot parse certificate: "));

  f = env.files;
  f.cert = env.dir.write("badpem.crt", "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n");
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(contains(error_of(r), "certificate #1"));

  f = env.files;
  f.key = env.dir.write("garbage.key", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.key);
  CHECK(contains(error_of(r), "cannot parse private key"));

  f = env.files;
  f.ca_bundle = env.dir.write("noca.crt", "# just a comment\n");
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.ca_bundle);
  CHECK(contains(error_of(r), "no CA certificate found"));

  f = env.files;
  f.crl = env.dir.write("bad.crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
  r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.crl);
  CHECK(contains(error_of(r), "cannot parse CRL"));
}

TEST_CASE("second CA in the bundle is garbage: named by position") {
  Env env;
  CertFiles f = env.files;
  f.ca_bundle = env.dir.write("ca2.crt", env.ca.cert_pem() +
                                             "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  auto r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.ca_bundle);
  CHECK(contains(error_of(r), "CA certificate #2"));
}

TEST_CASE("key does not match certificate") {
  Env env;
  CertFiles f = env.files;
  f.key = env.dir.write("other.key", generate_key_pem(KeyType::p256));
  auto r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.key);
  CHECK(contains(error_of(r), "private key does not match certificate"));
}

TEST_CASE("key types") {
  Env env;
  SUBCASE("RSA-1024 refused") {
    CertSpec s;
    s.key_type = KeyType::rsa1024;
    auto f = write_node_files(env.dir, "rsa1024", env.ca.issue(s), env.ca.cert_pem());
    auto r = load_cert_bundle(f);
    CHECK(!r.ok());
    CHECK(file_of(r) == f.key);
    CHECK(error_of(r) == "RSA key is 1024 bits; at least 2048 bits are required");
  }
  SUBCASE("RSA-2048 and P-384 accepted") {
    for (KeyType kt : {KeyType::rsa2048, KeyType::p384}) {
      CertSpec s;
      s.key_type = kt;
      auto f = write_node_files(env.dir, kt == KeyType::rsa2048 ? "rsa2048" : "p384", env.ca.issue(s),
                                env.ca.cert_pem());
      auto r = load_cert_bundle(f);
      CHECK_MESSAGE(r.ok(), why(r));
    }
  }
  SUBCASE("Ed25519 certificate and key refused with a clear message") {
    auto ed = make_ed25519_self_signed(env.dir);
    if (!ed) {
      MESSAGE("openssl CLI not available: skipped");
      return;
    }
    // Ed25519 cert as the node certificate.
    CertFiles f = env.files;
    f.cert = env.dir.write("ed.crt", ed->cert_pem);
    f.key = env.dir.write("ed.key", ed->key_pem);
    auto r = load_cert_bundle(f);
    CHECK(!r.ok());
    CHECK(file_of(r) == f.cert);
    CHECK(contains(error_of(r), "Ed25519 keys are not supported by the TLS library (mbedTLS)"));
    // Ed25519 key with a valid certificate.
    f = env.files;
    f.key = env.dir.write("ed-only.key", ed->key_pem);
    r = load_cert_bundle(f);
    CHECK(!r.ok());
    CHECK(file_of(r) == f.key);
    CHECK(contains(error_of(r), "Ed25519 keys are not supported by the TLS library (mbedTLS)"));
    // Ed25519 CA among good ones (mbedTLS alone would just skip it).
    f = env.files;
    f.ca_bundle = env.dir.write("mixed-ca.crt", env.ca.cert_pem() + ed->cert_pem);
    r = load_cert_bundle(f);
    CHECK(!r.ok());
    CHECK(file_of(r) == f.ca_bundle);
    CHECK(contains(error_of(r), "CA certificate #2"));
    CHECK(contains(error_of(r), "Ed25519 keys are not supported by the TLS library (mbedTLS)"));
  }
}

TEST_CASE("world-readable key refused unless allowed") {
  Env env;
  CertFiles f = env.files;
  f.key = env.dir.write("open.key", env.node.key_pem, 0644);
  auto r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(file_of(r) == f.key);
  CHECK(code_of(r) == base::Errc::refused);
  CHECK(contains(error_of(r), "world-readable"));
  CHECK(contains(error_of(r), "0644"));
  CHECK(contains(error_of(r), "chmod 600"));
  CHECK(contains(error_of(r), "FEDPROXY_ALLOW_INSECURE_KEY_PERMS=1"));

  f.allow_insecure_key_perms = true;
  r = load_cert_bundle(f);
  CHECK_MESSAGE(r.ok(), why(r));

  // Group-readable (e.g. Kubernetes defaultMode 0440) is fine.
  f = env.files;
  f.key = env.dir.write("group.key", env.node.key_pem, 0640);
  r = load_cert_bundle(f);
  CHECK_MESSAGE(r.ok(), why(r));
}

TEST_CASE("multi-CA bundle is counted") {
  Env env;
  TestCa b("second CA"), c("third CA", KeyType::p384);
  CertFiles f = env.files;
  f.ca_bundle = env.dir.write("three.crt", env.ca.cert_pem() + "\n# comment between\n" + b.cert_pem() + c.cert_pem());
  auto r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((*r)->ca_count() == 3);
}

TEST_CASE("DER CA file") {
  Env env;
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  REQUIRE(mbedtls_x509_crt_parse(&crt, reinterpret_cast<const unsigned char*>(env.ca.cert_pem().c_str()),
                                 env.ca.cert_pem().size() + 1) == 0);
  std::string der(reinterpret_cast<const char*>(crt.raw.p), crt.raw.len);
  mbedtls_x509_crt_free(&crt);
  CertFiles f = env.files;
  f.ca_bundle = env.dir.write("ca.der", der);
  auto r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((*r)->ca_count() == 1);
}

TEST_CASE("encrypted key is refused with a clear message") {
  if (!openssl_available()) return;
  Env env;
  std::string plain = env.dir.write("plain.key", env.node.key_pem);
  std::string enc = env.dir.path() + "/enc.key";
  std::string cmd = "openssl pkcs8 -topk8 -in '" + plain + "' -out '" + enc + "' -passout pass:secret >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  CertFiles f = env.files;
  f.key = enc;
  f.allow_insecure_key_perms = true;  // openssl writes with the umask
  auto r = load_cert_bundle(f);
  CHECK(!r.ok());
  CHECK(error_of(r) == "private key is encrypted; passphrase-protected keys are not supported");
}

TEST_CASE("CRL: PEM and DER, earliest nextUpdate") {
  if (!openssl_available()) {
    MESSAGE("openssl CLI not available: CRL loading skipped");
    return;
  }
  Env env;
  auto crl = make_crl(env.dir, env.ca, {env.node});
  auto stale = make_crl(env.dir, env.ca, {}, /*expired=*/true);
  REQUIRE(crl.has_value());
  REQUIRE(stale.has_value());
  CertFiles f = env.files;
  f.crl = env.dir.write("one.crl", *crl);
  auto r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  REQUIRE((*r)->crl() != nullptr);
  REQUIRE((*r)->crl_next_update().has_value());
  // default_crl_days = 30
  CHECK(*(*r)->crl_next_update() > now_unix() + 29 * 86400);
  CHECK(*(*r)->crl_next_update() < now_unix() + 31 * 86400);

  // Two CRLs in one PEM file: the earliest nextUpdate wins (2020-02-01).
  f.crl = env.dir.write("two.crl", *crl + *stale);
  r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  REQUIRE((*r)->crl_next_update().has_value());
  CHECK(*(*r)->crl_next_update() == 1580515200);

  // DER.
  std::string pem_path = env.dir.write("for-der.crl", *crl);
  std::string der_path = env.dir.path() + "/one.der.crl";
  REQUIRE(std::system(("openssl crl -in '" + pem_path + "' -outform der -out '" + der_path + "'").c_str()) == 0);
  f.crl = der_path;
  r = load_cert_bundle(f);
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((*r)->crl() != nullptr);
}

// --- helpers for `check` and `cert inspect` ---

TEST_CASE("days_left rounds down, negative once expired") {
  using certwatch::days_left;
  CHECK(days_left(1000 + 86400 * 3, 1000) == 3);
  CHECK(days_left(1000 + 86400 * 3 - 1, 1000) == 2);
  CHECK(days_left(1000, 1000) == 0);
  CHECK(days_left(999, 1000) == -1);
  CHECK(days_left(1000 - 86400, 1000) == -1);
  CHECK(days_left(1000 - 86401, 1000) == -2);
}

TEST_CASE("unix_to_iso8601") {
  CHECK(certwatch::unix_to_iso8601(0) == "1970-01-01T00:00:00Z");
  CHECK(certwatch::unix_to_iso8601(1900000000) == "2030-03-17T17:46:40Z");
  CHECK(certwatch::unix_to_iso8601(253402300799) == "9999-12-31T23:59:59Z");
}

TEST_CASE("verify_node_chain") {
  Env env;
  SUBCASE("signed by the bundle's CA") {
    auto r = load_cert_bundle(env.files);
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(certwatch::verify_node_chain(**r) == "");
  }
  SUBCASE("one of several CAs in the bundle") {
    TestCa other("other CA");
    CertFiles f = env.files;
    f.ca_bundle = env.dir.write("dual.crt", other.cert_pem() + env.ca.cert_pem());
    auto r = load_cert_bundle(f);
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(certwatch::verify_node_chain(**r) == "");
  }
  SUBCASE("another CA: loads (rotation), but does not verify") {
    TestCa other("other CA");
    CertFiles f = env.files;
    f.ca_bundle = env.dir.write("other.crt", other.cert_pem());
    auto r = load_cert_bundle(f);
    REQUIRE_MESSAGE(r.ok(), why(r));
    std::string why = certwatch::verify_node_chain(**r);
    CHECK(contains(why, "does not chain to a CA in " + f.ca_bundle));
    CHECK(why.find('\n') == std::string::npos);
  }
  SUBCASE("expired node certificate still chains (expiry is reported apart)") {
    CertSpec s;
    s.not_before = 1577836800;  // 2020-01-01
    s.not_after = 1577923200;   // 2020-01-02
    auto f = write_node_files(env.dir, "expired", env.ca.issue(s), env.ca.cert_pem());
    auto r = load_cert_bundle(f);
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(certwatch::verify_node_chain(**r) == "");
  }
  SUBCASE("revoked by the configured CRL") {
    if (!openssl_available()) return;
    auto crl = make_crl(env.dir, env.ca, {env.node});
    REQUIRE(crl.has_value());
    CertFiles f = env.files;
    f.crl = env.dir.write("revoking.crl", *crl);
    auto r = load_cert_bundle(f);
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(certwatch::verify_node_chain(**r) == "the certificate is revoked by the CRL " + f.crl);
  }
  SUBCASE("a stale CRL that does not list it is no chain problem") {
    if (!openssl_available()) return;
    auto stale = make_crl(env.dir, env.ca, {}, /*expired=*/true);
    REQUIRE(stale.has_value());
    CertFiles f = env.files;
    f.crl = env.dir.write("stale.crl", *stale);
    auto r = load_cert_bundle(f);
    REQUIRE_MESSAGE(r.ok(), why(r));
    CHECK(certwatch::verify_node_chain(**r) == "");
  }
}

TEST_CASE("load_cert_file and cert_details") {
  Env env;
  SUBCASE("PEM chain: every certificate, leaf first") {
    CertSpec s;
    s.subject = "CN=inspected,O=acme";
    s.uri_sans = {"spiffe://acme.example/nodes/b"};
    s.dns_sans = {"node-b.acme.example", "localhost"};
    s.not_before = 1700000000;
    s.not_after = 1900000000;
    s.key_type = KeyType::p384;
    auto leaf = env.ca.issue(s);
    std::string path = env.dir.write("chain.pem", leaf.cert_pem + env.ca.cert_pem());
    auto r = certwatch::load_cert_file(path);
    REQUIRE_MESSAGE(r.ok(), error_of(r));
    CHECK((*r)->count == 2);
    const mbedtls_x509_crt& first = (*r)->chain;
    REQUIRE(first.next != nullptr);
    auto d = certwatch::cert_details(first);
    CHECK(d.issuer == "CN=federation CA, O=fedproxy-test");
    CHECK(d.dns_sans == std::vector<std::string>{"node-b.acme.example", "localhost"});
    CHECK(d.ip_sans.empty());
    CHECK(d.not_before == 1700000000);
    CHECK(d.key_type == "EC");
    CHECK(d.key_curve == "P-384");
    CHECK(d.key_bits == 384);
    auto ca = certwatch::cert_details(*first.next);
    CHECK(ca.key_curve == "P-256");
    CHECK(ca.dns_sans.empty());
  }
  SUBCASE("RSA key") {
    CertSpec s;
    s.key_type = KeyType::rsa2048;
    std::string path = env.dir.write("rsa.pem", env.ca.issue(s).cert_pem);
    auto r = certwatch::load_cert_file(path);
    REQUIRE_MESSAGE(r.ok(), error_of(r));
    auto d = certwatch::cert_details((*r)->chain);
    CHECK(d.key_type == "RSA");
    CHECK(d.key_curve == "");
    CHECK(d.key_bits == 2048);
  }
  SUBCASE("errors: missing, garbage, a key instead of a certificate") {
    auto r = certwatch::load_cert_file(env.dir.path() + "/nope.pem");
    CHECK(!r.ok());
    CHECK(error_of(r) == "cannot read: No such file or directory");
    r = certwatch::load_cert_file(env.dir.write("garbage.pem", "hello\n"));
    CHECK(!r.ok());
    CHECK(contains(error_of(r), "no certificate found"));
    r = certwatch::load_cert_file(env.files.key);
    CHECK(!r.ok());
    CHECK(contains(error_of(r), "no certificate found"));
  }
}
