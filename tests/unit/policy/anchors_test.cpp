// Trust anchors per peer (SPEC §3) in policy: compiled from plain data, and
// checked in the identity step of evaluate() and in identify().
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/unit/policy/alloc_counter.hpp"
#include "tests/unit/policy/policy_fixture.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;
using namespace fedproxy::policy::testing;

namespace {

const std::string kAnchorKey(64, '1');      // partner-labs' CA key
const std::string kOtherCaKey(64, '2');     // another organisation's CA key
const std::string kIntermediate(64, '3');   // an intermediate below the partner's CA
const std::string kPinnedCaKey(64, '4');

AnchorInfo anchor(const std::string& spki, const std::string& der_sha256, const char* source = "ca_bundle") {
  return {"CN=partner-labs CA", der_sha256, spki, 1900000000, source, "/etc/fedproxy/partner-labs-ca.pem"};
}

PeerAnchors partner_anchors() {
  PeerAnchors a;
  // The CA re-issued with the same key (another DER): one key to match.
  a["partner-labs"] = {anchor(kAnchorKey, std::string(64, 'a')), anchor(kAnchorKey, std::string(64, 'b'), "manifest")};
  a["pinned-org"] = {anchor(kPinnedCaKey, std::string(64, 'c'))};
  a["blocked-org"] = {anchor(kPinnedCaKey, std::string(64, 'c'))};
  return a;
}

std::string anchors_config(const std::string& extra = "") {
  return config_json(R"([
    {"id": "ga", "peer": "partner-labs", "resources": ["tasks"], "status": "active"},
    {"id": "go", "peer": "other-org", "resources": ["tasks"], "status": "active"},
    {"id": "gpin", "peer": "pinned-org", "resources": ["tasks"], "status": "active"},
    {"id": "gb", "peer": "blocked-org", "resources": ["tasks"], "status": "active"}])",
                     extra);
}

std::shared_ptr<const Snapshot> compile_ok_with_bundle(const std::string& json, const PeerAnchors& anchors,
                                                      const std::vector<std::string>& bundle) {
  CompileResult r = compile_policy(parse_ok(json), {}, anchors, bundle);
  INFO("compile problems:\n" << dump(r));
  REQUIRE(r.snapshot != nullptr);
  return r.snapshot;
}

}  // namespace

TEST_CASE("chain_reaches_anchor: any CA of the chain, by key") {
  const std::vector<std::string> anchors{kAnchorKey, kPinnedCaKey};  // sorted
  CHECK(chain_reaches_anchor(std::vector<std::string>{kAnchorKey}, anchors));
  CHECK(chain_reaches_anchor(std::vector<std::string>{kAnchorKey, kIntermediate}, anchors));
  CHECK(chain_reaches_anchor(std::vector<std::string>{kOtherCaKey, kPinnedCaKey}, anchors));
  CHECK_FALSE(chain_reaches_anchor(std::vector<std::string>{kOtherCaKey, kIntermediate}, anchors));
  CHECK_FALSE(chain_reaches_anchor({}, anchors));
  CHECK_FALSE(chain_reaches_anchor(std::vector<std::string>{kAnchorKey}, {}));
}

TEST_CASE("compile: each peer's anchors, shown per peer; no anchors = empty") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  for (const auto& p : snap->peers()) {
    CAPTURE(p.slug);
    if (p.slug == "partner-labs") {
      REQUIRE(p.trust_anchors.size() == 2);
      CHECK(p.trust_anchors[0].spki_sha256 == kAnchorKey);
      CHECK(p.trust_anchors[1].source == "manifest");
      CHECK(p.trust_anchors[0].not_after == 1900000000);
    } else if (p.slug == "other-org") {
      CHECK(p.trust_anchors.empty());
    }
  }
  // Anchors of a slug that is no configured peer are not anyone's.
  PeerAnchors stray;
  stray["nobody-org"] = {anchor(kOtherCaKey, std::string(64, 'd'))};
  auto s2 = compile_ok(anchors_config(), {}, stray);
  for (const auto& p : s2->peers()) CHECK(p.trust_anchors.empty());
}

TEST_CASE("evaluate: a peer with anchors is accepted only with a chain that reaches them") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;

  call.chain = {kAnchorKey};
  CHECK(call.run(*snap, limiter).allow);
  call.chain = {kAnchorKey, kIntermediate};  // through an intermediate of the partner's CA
  CHECK(call.run(*snap, limiter).allow);

  for (const auto& chain : {std::vector<std::string>{kOtherCaKey}, std::vector<std::string>{},
                            std::vector<std::string>{kOtherCaKey, kPinnedCaKey}}) {
    call.chain = chain;
    CAPTURE(chain.size());
    Decision d = call.run(*snap, limiter);
    CHECK_FALSE(d.allow);
    CHECK(d.code == DenyCode::untrusted_issuer);
    CHECK(d.status == 403);
    CHECK(d.close_connection);  // an identity failure, like san_mismatch
    CHECK(std::string(d.message).find("trust anchor") != std::string::npos);
    REQUIRE(d.peer != nullptr);  // the peer it claimed to be, for the audit record
    CHECK(peer_slug(*d.peer) == "partner-labs");
    CHECK(d.grant == nullptr);
  }
  // A peer without anchors falls back to tls.ca_bundle: any verified chain.
  call.sans = {kOtherUri};
  call.chain = {kOtherCaKey};
  CHECK(call.run(*snap, limiter).allow);
}

TEST_CASE("evaluate: the anchor check sits after the pin and before the trust level") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.sans = {kPinnedUri};
  call.chain = {kOtherCaKey};
  CHECK(call.run(*snap, limiter).code == DenyCode::fingerprint_mismatch);
  call.fingerprint = kPin;
  CHECK(call.run(*snap, limiter).code == DenyCode::untrusted_issuer);
  call.chain = {kPinnedCaKey};
  CHECK(call.run(*snap, limiter).allow);
  call.sans = {"spiffe://blocked.example/nodes/a"};
  call.chain = {kOtherCaKey};
  CHECK(call.run(*snap, limiter).code == DenyCode::untrusted_issuer);
  call.chain = {kPinnedCaKey};
  CHECK(call.run(*snap, limiter).code == DenyCode::peer_blocked);
}

TEST_CASE("evaluate: shadow mode never lets an impersonator through") {
  auto snap = compile_ok(anchors_config(R"("enforce": false)"), {}, partner_anchors());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.chain = {kOtherCaKey};
  Decision d = call.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK_FALSE(d.shadow);
  CHECK(d.code == DenyCode::untrusted_issuer);
}

TEST_CASE("evaluate: insecure dev mode has no chain, so no anchor check") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.sans = {};
  call.fingerprint = "";
  call.dev_peer = "partner-labs";
  CHECK(call.run(*snap, limiter).allow);
}

TEST_CASE("identify: an impersonator is nobody, not the peer its SAN names") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  auto who = [&](std::vector<std::string> sans, std::vector<std::string> chain) -> std::string {
    Subject s;
    s.uri_sans = sans;
    s.chain_spki_sha256 = chain;
    const PeerEntry* p = identify(*snap, s);
    return p ? std::string(peer_slug(*p)) : "(none)";
  };
  CHECK(who({kPartnerUri}, {kAnchorKey}) == "partner-labs");
  CHECK(who({kPartnerUri}, {kOtherCaKey}) == "(none)");
  CHECK(who({kPartnerUri}, {}) == "(none)");
  CHECK(who({kOtherUri}, {kOtherCaKey}) == "other-org");
}

TEST_CASE("evaluate with anchors allocates nothing") {
  auto snap = compile_ok(anchors_config(), {}, partner_anchors());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call ok, bad;
  ok.chain = {kIntermediate, kAnchorKey};
  bad.chain = {kOtherCaKey};
  REQUIRE(ok.run(*snap, limiter).allow);
  long before = allocation_count();
  for (int i = 0; i < 200; ++i) {
    REQUIRE(ok.run(*snap, limiter).allow);
    REQUIRE(bad.run(*snap, limiter).code == DenyCode::untrusted_issuer);
  }
  CHECK(allocation_count() - before == 0);
}

TEST_CASE("trust_domain: the host of the spiffe:// entity_uri, inline or from the manifest") {
  auto with_peer = [](const std::string& peer) {
    return std::string(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
      "peers": [)") + peer + R"(], "routes": [{"prefix": "/t", "resource": "t"}], "grants": []})";
  };
  compile_ok(with_peer(R"({"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary",
                           "trust_domain": "partner-labs.example"})"));
  CompileResult r = compile_json(with_peer(
      R"({"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary",
          "trust_domain": "evil.example"})"));
  CHECK(find_problem(r, "peers[0].trust_domain", "is not the trust domain of entity_uri") != nullptr);
  r = compile_json(with_peer(R"({"org": "partner-labs", "entity_uri": "https://partner-labs.example/node",
                                 "trust_domain": "partner-labs.example"})"));
  CHECK(find_problem(r, "peers[0].trust_domain", "not a spiffe:// URI") != nullptr);

  Manifest m;
  m.org = "partner-labs";
  m.entity_uri = "spiffe://partner-labs.example/nodes/primary";
  m.trust_domain = "partner-labs.example";
  m.source = "peers/partner-labs.json";
  auto snap = compile_ok(with_peer(R"({"org": "partner-labs"})"), {m});
  CHECK(snap->peers()[0].trust_domain == std::optional<std::string>("partner-labs.example"));
  m.trust_domain = "other.example";
  r = compile_json(with_peer(R"({"org": "partner-labs"})"), {m});
  CHECK(find_problem(r, "peers[0].trust_domain", "is not the trust domain") != nullptr);
  r = compile_json(with_peer(R"({"org": "partner-labs", "trust_domain": "partner-labs.example"})"), {m});
  CHECK(find_problem(r, "peers[0].trust_domain", "differs from") != nullptr);
}

TEST_CASE("peer_only_anchor_spki: anchors that are not in tls.ca_bundle, sorted, once") {
  PeerAnchors a = partner_anchors();
  const std::vector<std::string> bundle{kPinnedCaKey};
  CHECK(peer_only_anchor_spki(a, bundle) == std::vector<std::string>{kAnchorKey});
  CHECK(peer_only_anchor_spki(a, {}) == std::vector<std::string>{kAnchorKey, kPinnedCaKey});
  CHECK(peer_only_anchor_spki({}, bundle).empty());
}

TEST_CASE("a peer without anchors falls back to tls.ca_bundle: another peer's CA cannot speak for it") {
  // partner-labs' CA is only partner-labs' anchor; the pinned-org CA is also in tls.ca_bundle.
  const std::vector<std::string> bundle{kOtherCaKey, kPinnedCaKey};
  auto snap = compile_ok_with_bundle(anchors_config(), partner_anchors(), bundle);
  CHECK(snap->peer_only_anchor_spki() == std::vector<std::string>{kAnchorKey});
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.sans = {kOtherUri};  // other-org: no anchors of its own
  call.chain = {kOtherCaKey};
  CHECK(call.run(*snap, limiter).allow);
  call.chain = {kPinnedCaKey};  // in tls.ca_bundle too: the fallback accepts it (check warns)
  CHECK(call.run(*snap, limiter).allow);
  for (const auto& chain : {std::vector<std::string>{kAnchorKey}, std::vector<std::string>{kAnchorKey, kIntermediate},
                            std::vector<std::string>{kOtherCaKey, kAnchorKey}}) {
    call.chain = chain;
    Decision d = call.run(*snap, limiter);
    CHECK(d.code == DenyCode::untrusted_issuer);
    CHECK(d.close_connection);
  }
  Subject s;
  const std::vector<std::string> sans{kOtherUri}, chain{kAnchorKey};
  s.uri_sans = sans;
  s.chain_spki_sha256 = chain;
  CHECK(identify(*snap, s) == nullptr);
  // The owner of that CA is still accepted with it.
  call.sans = {kPartnerUri};
  call.chain = {kAnchorKey};
  CHECK(call.run(*snap, limiter).allow);
}
