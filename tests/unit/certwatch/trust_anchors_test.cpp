// A peer's own trust anchors: where they come from, what is refused, and the
// handshake trust store they join.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <mbedtls/base64.h>
#include <mbedtls/x509_crt.h>

#include "certwatch/cert_bundle.hpp"
#include "certwatch/digest.hpp"
#include "certwatch/trust_anchors.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;
using certwatch::TrustAnchor;
using certwatch::TrustAnchorsResult;

namespace {

// The DER of the first certificate of a PEM text, and its key's SPKI hash.
struct Parsed {
  std::string der;
  std::string spki_sha256;
  explicit Parsed(const std::string& pem) {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    REQUIRE(mbedtls_x509_crt_parse(&crt, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1) == 0);
    der.assign(reinterpret_cast<const char*>(crt.raw.p), crt.raw.len);
    spki_sha256 = certwatch::sha256_hex(crt.pk_raw.p, crt.pk_raw.len);
    mbedtls_x509_crt_free(&crt);
  }
};

std::string base64(const std::string& bytes) {
  size_t len = 0;
  const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
  (void)mbedtls_base64_encode(nullptr, 0, &len, src, bytes.size());
  std::string out(len, '\0');
  REQUIRE(mbedtls_base64_encode(reinterpret_cast<unsigned char*>(out.data()), out.size(), &len, src, bytes.size()) == 0);
  out.resize(len);
  return out;
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

int count(const mbedtls_x509_crt* chain) {
  int n = 0;
  for (const mbedtls_x509_crt* c = chain; c != nullptr && c->raw.p != nullptr; c = c->next) ++n;
  return n;
}

}  // namespace

TEST_CASE("sha256_hex and hex_lower: known answers") {
  const unsigned char b[] = {0x00, 0x0f, 0xa0, 0xff};
  CHECK(certwatch::hex_lower(b, 4) == "000fa0ff");
  CHECK(certwatch::hex_lower(b, 0).empty());
  const std::string abc = "abc";
  CHECK(certwatch::sha256_hex(reinterpret_cast<const unsigned char*>(abc.data()), abc.size()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(certwatch::sha256_hex(nullptr, 0).empty());
}

TEST_CASE("anchors from a PEM file: every CA, with its fingerprints") {
  TempDir dir;
  TestCa p{"partner CA"}, q{"partner CA next"};
  const std::string path = dir.write("partner-ca.pem", p.cert_pem() + q.cert_pem(), 0644);
  TrustAnchorsResult r = certwatch::load_trust_anchor_file(path);
  REQUIRE_MESSAGE(r.ok(), r.error);
  REQUIRE(r.anchors.size() == 2);
  Parsed pp(p.cert_pem()), pq(q.cert_pem());
  const TrustAnchor& a = r.anchors[0];
  CHECK(a.der == pp.der);
  CHECK(a.spki_sha256 == pp.spki_sha256);
  CHECK(a.der_sha256 == certwatch::sha256_hex(reinterpret_cast<const unsigned char*>(pp.der.data()), pp.der.size()));
  CHECK(contains(a.subject, "CN=partner CA"));
  CHECK(a.not_after > now_unix() + 9 * 86400);
  CHECK(r.anchors[1].spki_sha256 == pq.spki_sha256);
  CHECK(r.anchors[0].spki_sha256 != r.anchors[1].spki_sha256);

  // The same CA twice is one anchor.
  const std::string twice = dir.write("twice.pem", p.cert_pem() + p.cert_pem(), 0644);
  CHECK(certwatch::load_trust_anchor_file(twice).anchors.size() == 1);
}

TEST_CASE("anchor file problems: unreadable, empty of certificates, a leaf, garbage") {
  TempDir dir;
  TestCa ca{"partner CA"};
  CHECK(contains(certwatch::load_trust_anchor_file(dir.path() + "/missing.pem").error, "cannot read"));
  const std::string text = dir.write("text.pem", "hello\n", 0644);
  CHECK(contains(certwatch::load_trust_anchor_file(text).error, "no CA certificate found"));
  CertSpec leaf;
  leaf.uri_sans = {"spiffe://partner-labs.example/nodes/primary"};
  const std::string leaf_path = dir.write("leaf.pem", ca.cert_pem() + ca.issue(leaf).cert_pem, 0644);
  TrustAnchorsResult r = certwatch::load_trust_anchor_file(leaf_path);
  CHECK_FALSE(r.ok());
  CHECK(r.anchors.empty());
  CHECK(contains(r.error, "certificate #2"));
  CHECK(contains(r.error, "not a CA certificate"));
  const std::string broken =
      dir.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
  CHECK(contains(certwatch::load_trust_anchor_file(broken).error, "CA certificate #1"));
}

TEST_CASE("anchors from PEM text (a manifest's trust_bundle string)") {
  TestCa ca{"gamma CA"};
  TrustAnchorsResult r = certwatch::parse_trust_anchor_pem(ca.cert_pem());
  REQUIRE_MESSAGE(r.ok(), r.error);
  REQUIRE(r.anchors.size() == 1);
  CHECK(r.anchors[0].spki_sha256 == Parsed(ca.cert_pem()).spki_sha256);
  CHECK_FALSE(certwatch::parse_trust_anchor_pem("").ok());
  CHECK_FALSE(certwatch::parse_trust_anchor_pem("not pem").ok());
}

TEST_CASE("anchors from base64 DER (a SPIFFE bundle's x5c entry)") {
  TestCa ca{"delta CA"};
  Parsed parsed(ca.cert_pem());
  TrustAnchorsResult r = certwatch::parse_trust_anchor_base64_der(base64(parsed.der));
  REQUIRE_MESSAGE(r.ok(), r.error);
  REQUIRE(r.anchors.size() == 1);
  CHECK(r.anchors[0].der == parsed.der);
  CHECK(r.anchors[0].spki_sha256 == parsed.spki_sha256);

  for (const std::string& bad : std::vector<std::string>{"%%%", "", "AAAA", base64("not a certificate at all")}) {
    CAPTURE(bad);
    TrustAnchorsResult b = certwatch::parse_trust_anchor_base64_der(bad);
    CHECK_FALSE(b.ok());
    CHECK(b.anchors.empty());
  }
  CHECK(contains(certwatch::parse_trust_anchor_base64_der("%%%").error, "not base64"));
  // A leaf in an x509-svid slot is refused like one in a file.
  CertSpec leaf;
  leaf.uri_sans = {"spiffe://delta.example/nodes/a"};
  Parsed leaf_der(ca.issue(leaf).cert_pem);
  CHECK(contains(certwatch::parse_trust_anchor_base64_der(base64(leaf_der.der)).error, "not a CA certificate"));
}

TEST_CASE("merge_trust_anchors keeps one of each certificate") {
  TestCa a{"A"}, b{"B"};
  auto ra = certwatch::parse_trust_anchor_pem(a.cert_pem()).anchors;
  auto rb = certwatch::parse_trust_anchor_pem(b.cert_pem()).anchors;
  std::vector<TrustAnchor> all;
  certwatch::merge_trust_anchors(all, ra);
  certwatch::merge_trust_anchors(all, rb);
  certwatch::merge_trust_anchors(all, ra);
  REQUIRE(all.size() == 2);
  CHECK(all[0].der == ra[0].der);
  CHECK(all[1].der == rb[0].der);
}

TEST_CASE("the trust store is tls.ca_bundle plus the peers' anchors, each once") {
  TempDir dir;
  TestCa own{"own CA"}, partner{"partner CA"};
  CertSpec node;
  node.uri_sans = {"spiffe://acme.example/nodes/a"};
  certwatch::CertFiles files = write_node_files(dir, "node", own.issue(node), own.cert_pem());
  auto anchors = certwatch::parse_trust_anchor_pem(partner.cert_pem()).anchors;
  auto own_anchor = certwatch::parse_trust_anchor_pem(own.cert_pem()).anchors;
  anchors.insert(anchors.end(), own_anchor.begin(), own_anchor.end());  // already in the bundle
  auto r = certwatch::load_cert_bundle(files, anchors);
  REQUIRE_MESSAGE(r.bundle != nullptr, r.to_string());
  CHECK(r.bundle->ca_count() == 1);               // tls.ca_bundle alone
  CHECK(count(r.bundle->ca_chain()) == 1);
  CHECK(count(r.bundle->trust_store()) == 2);     // + the partner's anchor, the own CA once

  auto plain = certwatch::load_cert_bundle(files);
  REQUIRE(plain.bundle != nullptr);
  CHECK(count(plain.bundle->trust_store()) == 1);
}
