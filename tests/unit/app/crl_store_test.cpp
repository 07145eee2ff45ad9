// CrlStore: which fetched CRL replaces the one in use, and when the next
// fetch is due (tls.crl_urls). CRLs are made by the openssl CLI.
#include <doctest/doctest.h>

#include <ctime>
#include <string>

#include <mbedtls/x509_crt.h>

#include "proxy/app/crl_store.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;
using app::CrlStore;

namespace {

// The CAs fetched CRLs must be signed by (tls.ca_bundle), parsed.
struct Cas {
  mbedtls_x509_crt chain;
  explicit Cas(const std::string& pem) {
    mbedtls_x509_crt_init(&chain);
    REQUIRE(mbedtls_x509_crt_parse(&chain, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1) == 0);
  }
  ~Cas() { mbedtls_x509_crt_free(&chain); }
};

core::FetchResult ok(std::string body) { return {200, std::move(body), ""}; }

const std::string kUrl = "http://crl.example/ca.crl";

}  // namespace

TEST_CASE("CrlStore: only a CRL signed by a trusted CA and not older than the one in use replaces it") {
  if (!openssl_available()) return;
  TempDir dir;
  TestCa ca("org CA"), other("someone else's CA");
  Cas cas(ca.cert_pem());
  const auto current = make_crl(dir, ca, {});
  const auto stale = make_crl(dir, ca, {}, /*expired=*/true);  // thisUpdate in 2020
  const auto foreign = make_crl(dir, other, {});
  REQUIRE(current);
  REQUIRE(stale);
  REQUIRE(foreign);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  CrlStore store;

  struct Row {
    const char* what;
    core::FetchResult result;
    const char* error;  // substring
  };
  const Row refused[] = {
      {"unreachable", {0, "", "connection refused"}, "connection refused"},
      {"not 200", {404, "nope", ""}, "HTTP 404"},
      {"garbage", ok("not a CRL at all"), "is not a CRL"},
      {"foreign", ok(*foreign), "not signed by a CA of tls.ca_bundle"},
  };
  uint64_t failures = 0;
  for (const Row& row : refused) {
    CAPTURE(row.what);
    core::FetchResult r = row.result;
    CrlStore::Outcome o = store.accept(kUrl, std::move(r), cas.chain, now, 3600000);
    CHECK_FALSE(o.changed);
    CHECK(o.error.find(row.error) != std::string::npos);
    CHECK(o.next_fetch_ms == CrlStore::kRetryMs);  // retried sooner than the refresh period
    CHECK(store.sources().at(kUrl).failures == ++failures);
    CHECK(store.crls().empty());  // still none in use
  }
  // refresh shorter than the retry: the refresh wins
  CHECK(store.accept(kUrl, {0, "", "down"}, cas.chain, now, 1000).next_fetch_ms == 1000);

  // the first good one is used; its nextUpdate (openssl: 30 days) is later than the refresh period
  CrlStore::Outcome first = store.accept(kUrl, ok(*current), cas.chain, now, 3600000);
  CHECK(first.changed);
  CHECK(first.error.empty());
  CHECK(first.next_fetch_ms == 3600000);
  CHECK(store.crls().at(kUrl) == *current);
  CHECK(store.sources().at(kUrl).last_error.empty());
  CHECK(store.sources().at(kUrl).issuer.find("org CA") != std::string::npos);

  // the same again: nothing to swap
  CHECK_FALSE(store.accept(kUrl, ok(*current), cas.chain, now, 3600000).changed);

  // an older one (a replay would un-revoke): refused, the newer one stays
  CrlStore::Outcome older = store.accept(kUrl, ok(*stale), cas.chain, now, 3600000);
  CHECK_FALSE(older.changed);
  CHECK(older.error.find("older") != std::string::npos);
  CHECK(store.crls().at(kUrl) == *current);

  // nextUpdate sooner than the refresh period: fetched at nextUpdate
  const int64_t next_update = store.sources().at(kUrl).next_update;
  REQUIRE(next_update > now);
  CrlStore::Outcome soon = store.accept(kUrl, ok(*current), cas.chain, next_update - 60, 3600000);
  CHECK(soon.next_fetch_ms == 60000);

  store.forget_others({"http://other.example/x.crl"});
  CHECK(store.sources().empty());
}
