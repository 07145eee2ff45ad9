#include <doctest/doctest.h>

#include <random>
#include <string>

#include <mbedtls/x509_crt.h>

#include "proxy/tls/peer_identity.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;

namespace {

tls::PeerIdentity parse_identity(const std::string& pem) {
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  REQUIRE(mbedtls_x509_crt_parse(&crt, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1) == 0);
  tls::PeerIdentity id = tls::identity_from_cert(crt);
  mbedtls_x509_crt_free(&crt);
  return id;
}

}  // namespace

TEST_CASE("identity_from_cert: URI SANs, grant, fingerprints, subject, not_after") {
  TestCa ca;
  CertSpec s;
  s.subject = "CN=node one,O=partner-labs";
  s.dns_sans = {"dns.example"};
  s.uri_sans = {"spiffe://partner-labs.example/nodes/primary", "urn:x:y"};
  s.grant_id = "grant-123";
  s.not_after = 2000000000;  // 2033-05-18T03:33:20Z
  Issued node = ca.issue(s);
  tls::PeerIdentity id = parse_identity(node.cert_pem);
  CHECK(id.uri_sans == std::vector<std::string>{"spiffe://partner-labs.example/nodes/primary", "urn:x:y"});
  REQUIRE(id.grant_id.has_value());
  CHECK(*id.grant_id == "grant-123");
  CHECK(id.subject == "CN=node one, O=partner-labs");
  CHECK(id.not_after == 2000000000);
  CHECK(id.der_sha256.size() == 64);
  CHECK(id.spki_sha256.size() == 64);
  CHECK(id.der_sha256 != id.spki_sha256);
  CHECK(id.der_sha256.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK_FALSE(id.present);  // only the engine decides that
  CHECK_FALSE(id.resumed);

  // Fingerprints match OpenSSL's (DER and SPKI).
  if (openssl_available()) {
    TempDir dir;
    std::string p = dir.write("c.pem", node.cert_pem);
    std::string cmd = "openssl x509 -in '" + p + "' -outform der | openssl dgst -sha256 -r > '" + p + ".sha'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::string spki = "openssl x509 -in '" + p + "' -pubkey -noout | openssl pkey -pubin -outform der" +
                       " | openssl dgst -sha256 -r > '" + p + ".spki'";
    REQUIRE(std::system(spki.c_str()) == 0);
    FILE* f = std::fopen((p + ".sha").c_str(), "r");
    char buf[65] = {};
    REQUIRE(f != nullptr);
    REQUIRE(std::fread(buf, 1, 64, f) == 64);
    std::fclose(f);
    CHECK(id.der_sha256 == std::string(buf, 64));
    f = std::fopen((p + ".spki").c_str(), "r");
    REQUIRE(f != nullptr);
    REQUIRE(std::fread(buf, 1, 64, f) == 64);
    std::fclose(f);
    CHECK(id.spki_sha256 == std::string(buf, 64));
  }
}

TEST_CASE("identity_from_cert: no SAN, no grant") {
  TestCa ca;
  CertSpec s;
  Issued node = ca.issue(s);
  tls::PeerIdentity id = parse_identity(node.cert_pem);
  CHECK(id.uri_sans.empty());
  CHECK_FALSE(id.grant_id.has_value());
  CHECK(id.subject == "CN=node, O=fedproxy-test");
}

TEST_CASE("serialize / deserialize round trip") {
  tls::PeerIdentity id;
  id.present = true;
  id.uri_sans = {"spiffe://a/b", "", std::string("bin\0ary", 7)};
  id.der_sha256 = std::string(64, 'a');
  id.spki_sha256 = std::string(64, 'b');
  id.grant_id = "g";
  id.subject = "CN=x";
  id.not_after = -5;
  id.resumed = true;
  id.chain_spki_sha256 = {std::string(64, 'c'), std::string(64, 'd')};
  auto back = tls::PeerIdentity::deserialize(id.serialize());
  REQUIRE(back.has_value());
  CHECK(back->present);
  CHECK(back->uri_sans == id.uri_sans);
  CHECK(back->der_sha256 == id.der_sha256);
  CHECK(back->spki_sha256 == id.spki_sha256);
  CHECK(back->grant_id == id.grant_id);
  CHECK(back->subject == id.subject);
  CHECK(back->not_after == -5);
  CHECK(back->chain_spki_sha256 == id.chain_spki_sha256);
  CHECK_FALSE(back->resumed);  // a property of the connection, not carried

  tls::PeerIdentity empty;
  auto e = tls::PeerIdentity::deserialize(empty.serialize());
  REQUIRE(e.has_value());
  CHECK_FALSE(e->present);
  CHECK_FALSE(e->grant_id.has_value());
  CHECK(e->chain_spki_sha256.empty());
  id.grant_id.reset();
  auto g = tls::PeerIdentity::deserialize(id.serialize());
  REQUIRE(g.has_value());
  CHECK_FALSE(g->grant_id.has_value());
}

TEST_CASE("deserialize rejects garbage, truncation and trailing bytes") {
  tls::PeerIdentity id;
  id.present = true;
  id.uri_sans = {"spiffe://partner/x"};
  id.der_sha256 = std::string(64, 'c');
  id.grant_id = "grant";
  id.chain_spki_sha256 = {std::string(64, 'e')};
  const std::string good = id.serialize();
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(tls::PeerIdentity::deserialize(good.substr(0, n)).has_value());
  }
  CHECK_FALSE(tls::PeerIdentity::deserialize(good + "x").has_value());
  std::string bad_version = good;
  bad_version[0] = 9;
  CHECK_FALSE(tls::PeerIdentity::deserialize(bad_version).has_value());
  std::string huge_count = good;
  huge_count[2] = '\x7f';  // n_sans high byte
  CHECK_FALSE(tls::PeerIdentity::deserialize(huge_count).has_value());
  // A ticket sealed before the chain was carried (format 2) does not resume:
  // its identity could not be checked against the peer's trust anchors.
  std::string format2 = good;
  format2[0] = 2;
  CHECK_FALSE(tls::PeerIdentity::deserialize(format2).has_value());
  // The chain count is bounded (the last field: u32 count, then one string).
  std::string huge_chain = good;
  huge_chain[good.size() - 4 - 64 - 4] = '\x7f';
  CHECK_FALSE(tls::PeerIdentity::deserialize(huge_chain).has_value());

  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    if (!junk.empty() && (i & 1)) junk[0] = 1;  // valid version byte half the time
    (void)tls::PeerIdentity::deserialize(junk);  // must not crash or throw
  }
  // Random single-byte mutations of a valid blob.
  for (int i = 0; i < 5000; ++i) {
    std::string m = good;
    m[rng() % m.size()] = static_cast<char>(rng());
    auto r = tls::PeerIdentity::deserialize(m);
    if (r) CHECK(r->serialize().size() == m.size());
  }
}
