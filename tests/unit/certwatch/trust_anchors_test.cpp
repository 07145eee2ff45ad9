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
#include "proxy/base/result.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;
using certwatch::TrustAnchor;

namespace {

// A failed Result's parts for CHECKs, safe to call on a success too.
template <class T>
std::string why(const base::Result<T>& r) { return r.ok() ? "" : base::to_string(r.error()); }
template <class T>
std::string error_of(const base::Result<T>& r) { return r.ok() ? "(no error)" : r.message(); }

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
  auto r = certwatch::load_trust_anchor_file(path);
  REQUIRE_MESSAGE(r.ok(), error_of(r));
  REQUIRE(r->size() == 2);
  Parsed pp(p.cert_pem()), pq(q.cert_pem());
  const TrustAnchor& a = (*r)[0];
  CHECK(a.der == pp.der);
  CHECK(a.spki_sha256 == pp.spki_sha256);
  CHECK(a.der_sha256 == certwatch::sha256_hex(reinterpret_cast<const unsigned char*>(pp.der.data()), pp.der.size()));
  CHECK(contains(a.subject, "CN=partner CA"));
  CHECK(a.not_after > now_unix() + 9 * 86400);
  CHECK((*r)[1].spki_sha256 == pq.spki_sha256);
  CHECK((*r)[0].spki_sha256 != (*r)[1].spki_sha256);

  // The same CA twice is one anchor.
  const std::string twice = dir.write("twice.pem", p.cert_pem() + p.cert_pem(), 0644);
  CHECK(certwatch::load_trust_anchor_file(twice)->size() == 1);
}

TEST_CASE("anchor file problems: unreadable, empty of certificates, a leaf, garbage") {
  TempDir dir;
  TestCa ca{"partner CA"};
  CHECK(contains(error_of(certwatch::load_trust_anchor_file(dir.path() + "/missing.pem")), "cannot read"));
  const std::string text = dir.write("text.pem", "hello\n", 0644);
  CHECK(contains(error_of(certwatch::load_trust_anchor_file(text)), "no CA certificate found"));
  CertSpec leaf;
  leaf.uri_sans = {"spiffe://partner-labs.example/nodes/primary"};
  const std::string leaf_path = dir.write("leaf.pem", ca.cert_pem() + ca.issue(leaf).cert_pem, 0644);
  auto r = certwatch::load_trust_anchor_file(leaf_path);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(error_of(r), "certificate #2"));
  CHECK(contains(error_of(r), "not a CA certificate"));
  const std::string broken =
      dir.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
  CHECK(contains(error_of(certwatch::load_trust_anchor_file(broken)), "CA certificate #1"));
}

TEST_CASE("anchors from PEM text (a manifest's trust_bundle string)") {
  TestCa ca{"gamma CA"};
  auto r = certwatch::parse_trust_anchor_pem(ca.cert_pem());
  REQUIRE_MESSAGE(r.ok(), error_of(r));
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].spki_sha256 == Parsed(ca.cert_pem()).spki_sha256);
  CHECK_FALSE(certwatch::parse_trust_anchor_pem("").ok());
  CHECK_FALSE(certwatch::parse_trust_anchor_pem("not pem").ok());
}

TEST_CASE("anchors from base64 DER (a SPIFFE bundle's x5c entry)") {
  TestCa ca{"delta CA"};
  Parsed parsed(ca.cert_pem());
  auto r = certwatch::parse_trust_anchor_base64_der(base64(parsed.der));
  REQUIRE_MESSAGE(r.ok(), error_of(r));
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].der == parsed.der);
  CHECK((*r)[0].spki_sha256 == parsed.spki_sha256);

  for (const std::string& bad : std::vector<std::string>{"%%%", "", "AAAA", base64("not a certificate at all")}) {
    CAPTURE(bad);
    auto b = certwatch::parse_trust_anchor_base64_der(bad);
    CHECK_FALSE(b.ok());
  }
  CHECK(contains(error_of(certwatch::parse_trust_anchor_base64_der("%%%")), "not base64"));
  // A leaf in an x509-svid slot is refused like one in a file.
  CertSpec leaf;
  leaf.uri_sans = {"spiffe://delta.example/nodes/a"};
  Parsed leaf_der(ca.issue(leaf).cert_pem);
  CHECK(contains(error_of(certwatch::parse_trust_anchor_base64_der(base64(leaf_der.der))), "not a CA certificate"));
}

TEST_CASE("merge_trust_anchors keeps one of each certificate") {
  TestCa a{"A"}, b{"B"};
  auto ra = certwatch::parse_trust_anchor_pem(a.cert_pem()).value();
  auto rb = certwatch::parse_trust_anchor_pem(b.cert_pem()).value();
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
  auto anchors = certwatch::parse_trust_anchor_pem(partner.cert_pem()).value();
  auto own_anchor = certwatch::parse_trust_anchor_pem(own.cert_pem()).value();
  anchors.insert(anchors.end(), own_anchor.begin(), own_anchor.end());  // already in the bundle
  auto r = certwatch::load_cert_bundle(files, anchors);
  REQUIRE_MESSAGE(r.ok(), why(r));
  CHECK((*r)->ca_count() == 1);               // tls.ca_bundle alone
  CHECK(count((*r)->ca_chain()) == 1);
  CHECK(count((*r)->trust_store()) == 2);     // + the partner's anchor, the own CA once

  auto plain = certwatch::load_cert_bundle(files);
  REQUIRE(plain.ok());
  CHECK(count((*plain)->trust_store()) == 1);
}
