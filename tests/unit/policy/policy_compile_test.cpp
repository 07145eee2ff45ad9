// compile_policy (SPEC §3, §4): every validation rule, with its location and
// the grant id in the message; every problem reported, not just the first;
// peers from manifests; precomputed header values.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "policy/policy_internal.hpp"
#include "policy_fixture.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;
using namespace fedproxy::policy::testing;

namespace {

const std::string kBase = R"("peer": "partner-labs", "resources": ["tasks"], "status": "active")";

// Compiles a config with one grant (id kGrantA) made of `fields`.
CompileResult one(const std::string& fields) {
  return compile_json(config_json("[" + grant(kGrantA, fields) + "]"));
}

struct RuleCase {
  const char* name;
  std::string fields;
  const char* where;
  const char* fragment;
};

}  // namespace

TEST_CASE("the spec's example grant compiles, with header values precomputed") {
  auto snap = compile_ok(config_json("[" + grant(kGrantA, R"(
      "peer": "partner-labs", "resources": ["tasks","notes"],
      "excluded_resources": [], "methods": ["GET","HEAD"],
      "filters": {"tasks": {"include_teams": ["t1"], "include_personal": true}},
      "max_rows_per_query": 500, "rate_limit": {"rps": 50, "burst": 100},
      "source_cidrs": ["10.0.0.0/8"], "expires_at": "2027-04-13T00:00:00Z",
      "status": "active", "approved_sensitive": false)") + "]"));
  CHECK(snap->peer_count() == 5);
  CHECK(snap->grant_count() == 1);
  RateLimiter limiter;
  limiter.rebind(*snap);
  Decision d = Call{}.run(*snap, limiter);
  REQUIRE(d.allow);
  REQUIRE(d.grant != nullptr);
  REQUIRE(d.peer != nullptr);
  CHECK(grant_id(*d.grant) == kGrantA);
  CHECK(grant_max_rows(*d.grant) == 500);
  CHECK(grant_max_rows_text(*d.grant) == "500");
  CHECK(grant_scope_json(*d.grant) == R"({"tasks":{"include_personal":true,"include_teams":["t1"]}})");
  CHECK(peer_slug(*d.peer) == "partner-labs");
  CHECK(peer_entity_uri(*d.peer) == kPartnerUri);
  CHECK(peer_trust(*d.peer) == TrustLevel::verified);
  CHECK(peer_allowed_regions(*d.peer) == R"(["eu","us"])");
  CHECK(peer_allowed_artifact_types(*d.peer) == "");
  CHECK(d.resource == "tasks");
  CHECK(d.entity_uri == kPartnerUri);
}

TEST_CASE("defaults: methods GET/HEAD, max rows 500, scope {}, enforce on") {
  auto snap = compile_ok(config_json("[" + grant(kGrantA, kBase) + "]"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  Decision d = call.run(*snap, limiter);
  REQUIRE(d.allow);
  CHECK(grant_max_rows(*d.grant) == 500);
  CHECK(grant_scope_json(*d.grant) == "{}");
  call.method = "HEAD";
  CHECK(call.run(*snap, limiter).allow);
  call.method = "POST";
  Decision post = call.run(*snap, limiter);
  CHECK(post.code == DenyCode::method_not_allowed);
  CHECK_FALSE(post.shadow);
}

TEST_CASE("scope JSON is ASCII-only (a valid header value)") {
  auto snap = compile_ok(config_json("[" + grant(kGrantA, R"("peer": "partner-labs",
      "resources": ["tasks"], "status": "active",
      "filters": {"tasks": {"team": "Zürich 🚀", "q": "a\"b\\c\n"}})") + "]"));
  RateLimiter limiter;
  Decision d = Call{}.run(*snap, limiter);
  REQUIRE(d.grant != nullptr);
  CHECK(grant_scope_json(*d.grant) ==
        R"({"tasks":{"q":"a\"b\\c\n","team":"Z\u00fcrich \ud83d\ude80"}})");
}

TEST_CASE("a config with peers and no grants compiles (nobody allowed yet)") {
  auto snap = compile_ok(config_json("[]"));
  CHECK(snap->grant_count() == 0);
  RateLimiter limiter;
  limiter.rebind(*snap);
  Decision d = Call{}.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK(d.code == DenyCode::unknown_grant);
}

TEST_CASE("grant validation rules, each with its location and the grant id") {
  const std::vector<RuleCase> cases = {
      {"id charset", "", "grants[0].id", "1 to 128 characters"},
      {"unknown key", kBase + R"(, "resource": ["tasks"])", "grants[0].resource",
       "did you mean \"resources\"?"},
      {"unknown key, no suggestion", kBase + R"(, "colour": "red")", "grants[0].colour",
       "unknown key"},
      {"peer required", R"("resources": ["tasks"], "status": "active")", "grants[0].peer",
       "required"},
      {"peer not a string", R"("peer": 7, "resources": ["tasks"], "status": "active")",
       "grants[0].peer", "must be a string"},
      {"peer not configured", R"("peer": "nobody-org", "resources": ["tasks"], "status": "active")",
       "grants[0].peer", "\"nobody-org\" is not configured in peers"},
      {"status required", R"("peer": "partner-labs", "resources": ["tasks"])", "grants[0].status",
       "required"},
      {"status enum", R"("peer": "partner-labs", "resources": ["tasks"], "status": "enabled")",
       "grants[0].status", "\"pending\", \"active\" or \"revoked\""},
      {"resources required", R"("peer": "partner-labs", "status": "active")",
       "grants[0].resources", "required"},
      {"resources empty", R"("peer": "partner-labs", "resources": [], "status": "active")",
       "grants[0].resources", "must not be empty"},
      {"resources not an array", R"("peer": "partner-labs", "resources": "tasks", "status": "active")",
       "grants[0].resources", "must be an array"},
      {"resources non-string", R"("peer": "partner-labs", "resources": [1], "status": "active")",
       "grants[0].resources", "non-empty strings"},
      {"resources unique", R"("peer": "partner-labs", "resources": ["tasks", "tasks"], "status": "active")",
       "grants[0].resources", "twice"},
      {"resources known", R"("peer": "partner-labs", "resources": ["taks"], "status": "active")",
       "grants[0].resources", "\"taks\" is not in the route table; did you mean \"tasks\"?"},
      {"sensitive: credentials", R"("peer": "partner-labs", "resources": ["credentials"], "status": "active")",
       "grants[0].resources", "\"credentials\" is sensitive"},
      {"sensitive: api_keys", R"("peer": "partner-labs", "resources": ["api_keys"], "status": "active")",
       "grants[0].resources", "\"api_keys\" is sensitive"},
      {"sensitive: marked in routes", R"("peer": "partner-labs", "resources": ["secrets"], "status": "active",
        "approved_sensitive": false)",
       "grants[0].resources", "\"secrets\" is sensitive"},
      {"excluded overlap", kBase + R"(, "excluded_resources": ["tasks"])",
       "grants[0].excluded_resources", "both granted and excluded"},
      {"excluded known", kBase + R"(, "excluded_resources": ["nope"])",
       "grants[0].excluded_resources", "not in the route table"},
      {"excluded unique", kBase + R"(, "excluded_resources": ["notes", "notes"])",
       "grants[0].excluded_resources", "twice"},
      {"methods empty", kBase + R"(, "methods": [])", "grants[0].methods", "must not be empty"},
      {"methods uppercase", kBase + R"(, "methods": ["get"])", "grants[0].methods",
       "uppercase token"},
      {"methods token", kBase + R"(, "methods": ["GET POST"])", "grants[0].methods",
       "uppercase token"},
      {"methods unique", kBase + R"(, "methods": ["GET", "GET"])", "grants[0].methods", "twice"},
      {"filters object", kBase + R"(, "filters": [])", "grants[0].filters", "must be an object"},
      {"filters keys ⊆ resources", kBase + R"(, "filters": {"notes": {}})", "grants[0].filters",
       "\"notes\" is not one of the grant's resources"},
      {"max rows 0", kBase + R"(, "max_rows_per_query": 0)", "grants[0].max_rows_per_query",
       "from 1 to 10000"},
      {"max rows 10001", kBase + R"(, "max_rows_per_query": 10001)",
       "grants[0].max_rows_per_query", "from 1 to 10000"},
      {"max rows string", kBase + R"(, "max_rows_per_query": "500")",
       "grants[0].max_rows_per_query", "from 1 to 10000"},
      {"max rows fraction", kBase + R"(, "max_rows_per_query": 1.5)",
       "grants[0].max_rows_per_query", "from 1 to 10000"},
      {"rate_limit object", kBase + R"(, "rate_limit": 5)", "grants[0].rate_limit",
       "must be an object"},
      {"rate_limit rps required", kBase + R"(, "rate_limit": {"burst": 5})", "grants[0].rate_limit",
       "rps is required"},
      {"rate_limit rps > 0", kBase + R"(, "rate_limit": {"rps": 0, "burst": 5})",
       "grants[0].rate_limit", "rps must be a number above 0"},
      {"rate_limit rps negative", kBase + R"(, "rate_limit": {"rps": -1})", "grants[0].rate_limit",
       "rps must be a number above 0"},
      {"rate_limit rps huge", kBase + R"(, "rate_limit": {"rps": 1e9})", "grants[0].rate_limit",
       "at most 1000000"},
      {"rate_limit burst ≥ 1", kBase + R"(, "rate_limit": {"rps": 5, "burst": 0})",
       "grants[0].rate_limit", "burst must be an integer"},
      {"rate_limit burst integer", kBase + R"(, "rate_limit": {"rps": 5, "burst": 2.5})",
       "grants[0].rate_limit", "burst must be an integer"},
      {"rate_limit unknown key", kBase + R"(, "rate_limit": {"rps": 5, "brust": 5})",
       "grants[0].rate_limit", "did you mean \"burst\"?"},
      {"source_cidrs empty", kBase + R"(, "source_cidrs": [])", "grants[0].source_cidrs",
       "must not be empty"},
      {"source_cidrs invalid", kBase + R"(, "source_cidrs": ["10.0.0.0/33"])",
       "grants[0].source_cidrs", "prefix length"},
      {"source_cidrs host bits", kBase + R"(, "source_cidrs": ["10.0.0.1/8"])",
       "grants[0].source_cidrs", "did you mean \"10.0.0.0/8\"?"},
      {"source_cidrs not an array", kBase + R"(, "source_cidrs": "10.0.0.0/8")",
       "grants[0].source_cidrs", "must be an array"},
      {"expires_at format", kBase + R"(, "expires_at": "2027-04-13")", "grants[0].expires_at",
       "RFC 3339"},
      {"expires_at date", kBase + R"(, "expires_at": "2027-02-30T00:00:00Z")",
       "grants[0].expires_at", "RFC 3339"},
      {"approved_sensitive bool", kBase + R"(, "approved_sensitive": "yes")",
       "grants[0].approved_sensitive", "true or false"},
      {"enforce bool", kBase + R"(, "enforce": 0)", "grants[0].enforce", "true or false"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    CompileResult r = c.fields.empty()
                          ? compile_json(config_json("[" + grant("bad id!", kBase) + "]"))
                          : one(c.fields);
    INFO("problems:\n" << dump(r));
    CHECK(r.snapshot == nullptr);
    const ConfigProblem* p = find_problem(r, c.where, c.fragment);
    REQUIRE(p != nullptr);
    // Every message names the grant.
    CHECK(p->message.find(c.fields.empty() ? "grant \"bad id!\"" : "grant \"" + std::string(kGrantA) + "\"") !=
          std::string::npos);
  }
}

TEST_CASE("sensitive resources compile with approved_sensitive: true") {
  auto snap = compile_ok(config_json("[" + grant(kGrantA, R"("peer": "partner-labs",
      "resources": ["credentials", "api_keys", "secrets"], "status": "active",
      "approved_sensitive": true)") + "]"));
  CHECK(snap->grant_count() == 1);
}

TEST_CASE("every problem is reported, across fields and grants") {
  CompileResult r = compile_json(config_json(
      "[" +
      grant(kGrantA, R"("peer": "nobody-org", "resources": ["taks"], "status": "on",
                        "max_rows_per_query": 0)") +
      "," + grant(kGrantB, R"("peer": "partner-labs", "resources": ["credentials"], "status": "active",
                        "methods": ["get"])") +
      "," + grant(kGrantA, kBase) + "]"));
  INFO(dump(r));
  CHECK(r.snapshot == nullptr);
  CHECK(find_problem(r, "grants[0].peer"));
  CHECK(find_problem(r, "grants[0].resources"));
  CHECK(find_problem(r, "grants[0].status"));
  CHECK(find_problem(r, "grants[0].max_rows_per_query"));
  CHECK(find_problem(r, "grants[1].resources", "sensitive"));
  CHECK(find_problem(r, "grants[1].methods"));
  CHECK(find_problem(r, "grants[2].id", "duplicate grant id (also grants[0])"));
  CHECK(r.problems.size() == 7);
}

TEST_CASE("peers: entity_uri, endpoints and pin from manifests") {
  const std::string cfg = R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs"}],
    "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"}],
    "grants": [{"id": "g1", "peer": "partner-labs", "resources": ["tasks"], "status": "active"}]})";
  Manifest m;
  m.org = "partner-labs";
  m.entity_uri = kPartnerUri;
  m.endpoints = {"https://partner-labs.example:8443"};
  m.tls_cert_fingerprint = std::string(64, 'c');
  m.source = "/etc/fedproxy/peers/partner-labs.json";
  Manifest unrelated = m;
  unrelated.org = "unrelated-org";
  unrelated.entity_uri = "spiffe://unrelated.example/x";
  auto snap = compile_ok(cfg, {unrelated, m});
  auto peers = snap->peers();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].slug == "partner-labs");
  CHECK(peers[0].entity_uri == kPartnerUri);
  CHECK(peers[0].trust == "verified");
  CHECK(peers[0].expires_at == 0);
  CHECK(peers[0].endpoints == std::vector<std::string>{"https://partner-labs.example:8443"});
  CHECK(peers[0].cert_fingerprint == std::string(64, 'c'));

  // The manifest's pin applies.
  RateLimiter limiter;
  Call call;
  call.fingerprint = std::string(64, 'c');
  CHECK(call.run(*snap, limiter).allow);
  call.fingerprint = std::string(64, 'd');
  CHECK(call.run(*snap, limiter).code == DenyCode::fingerprint_mismatch);

  // No manifest and nothing inline: a problem naming the peer.
  CompileResult none = compile_json(cfg);
  INFO(dump(none));
  CHECK(find_problem(none, "peers[0].entity_uri", "peer \"partner-labs\" has no entity_uri"));
}

TEST_CASE("peers: inline and manifest values must agree") {
  Manifest m;
  m.org = "partner-labs";
  m.entity_uri = kPartnerUri;
  m.endpoints = {"https://a.example:8443", "https://b.example:8443"};
  m.tls_cert_fingerprint = std::string(64, 'c');
  m.source = "peers/partner-labs.json";
  auto cfg = [](const std::string& peer_fields) {
    return R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
      "peers": [{"org": "partner-labs")" + peer_fields + R"(}],
      "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"}]})";
  };
  // Agreeing (endpoints in another order) is fine.
  compile_ok(cfg(R"(, "entity_uri": "spiffe://partner-labs.example/nodes/primary",
      "endpoints": ["https://b.example:8443", "https://a.example:8443"],
      "cert_fingerprint": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc")"),
             {m});
  CompileResult r = compile_json(cfg(R"(, "entity_uri": "spiffe://partner-labs.example/nodes/other",
      "endpoints": ["https://a.example:8443"],
      "cert_fingerprint": "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd")"),
                                 {m});
  INFO(dump(r));
  CHECK(r.snapshot == nullptr);
  CHECK(find_problem(r, "peers[0].entity_uri", "differs from \"spiffe://partner-labs.example/nodes/primary\" in its manifest \"peers/partner-labs.json\""));
  CHECK(find_problem(r, "peers[0].endpoints", "differ"));
  CHECK(find_problem(r, "peers[0].cert_fingerprint", "differs"));
}

TEST_CASE("peers: duplicate entity_uri, node's own entity_uri") {
  CompileResult r = compile_json(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs", "entity_uri": "spiffe://same.example/x"},
              {"org": "other-org", "entity_uri": "spiffe://same.example/x"},
              {"org": "third-org", "entity_uri": "spiffe://acme.example/nodes/a"}]})");
  INFO(dump(r));
  CHECK(r.snapshot == nullptr);
  CHECK(find_problem(r, "peers[1].entity_uri", "also the entity_uri of peer \"partner-labs\" (peers[0])"));
  CHECK(find_problem(r, "peers[2].entity_uri", "this node's own"));
  CHECK(r.problems.size() == 2);
}

TEST_CASE("routes: prefixes equal once canonicalized, compared case-insensitively") {
  CompileResult r = compile_json(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"},
               {"prefix": "/api/v1/%74asks", "resource": "tasks2"},
               {"prefix": "/API/V1/Tasks", "resource": "tasks3"},
               {"prefix": "/api/v1/%6Eotes", "resource": "notes"},
               {"prefix": "/api/v1/notes/", "resource": "notes_dir"}]})");
  INFO(dump(r));
  CHECK(find_problem(r, "routes[1].prefix", "same path as routes[0] once canonicalized (\"/api/v1/tasks\""));
  CHECK(find_problem(r, "routes[2].prefix", "same path as routes[0]"));
  CHECK(r.problems.size() == 2);
}

TEST_CASE("routes: the case-insensitive hash and equality fold ASCII letters only") {
  const AsciiCaseHash hash;
  const AsciiCaseEqual equal;
  // Lengths around the 8-byte words the comparison works in; every byte.
  for (size_t len = 0; len <= 20; ++len) {
    for (int b = 0; b < 256; ++b) {
      std::string a(len, 'q');
      if (len > 0) a[(static_cast<size_t>(b) * 7) % len] = static_cast<char>(b);
      std::string upper = a;
      for (char& c : upper) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
      }
      INFO("len " << len << " byte " << b);
      CHECK(equal(a, upper));
      CHECK(hash(a) == hash(upper));
      if (len == 0) continue;
      const size_t at = (static_cast<size_t>(b) * 7) % len;
      for (int other : {b ^ 0x20, b ^ 0x01, b ^ 0x80}) {
        std::string c = a;
        c[at] = static_cast<char>(other);
        const bool letters = ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') && other == (b ^ 0x20);
        CHECK(equal(a, c) == letters);
      }
    }
  }
  CHECK_FALSE(equal("/api/v1/tasks", "/api/v1/task"));
  CHECK_FALSE(equal("@[`{", "`{@["));  // neighbours of the letters are not letters
}

TEST_CASE("routes: matched on whole segments, ASCII case-insensitively") {
  auto snap = compile_ok(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary"}],
    "routes": [{"prefix": "/Api/V1/Tasks", "resource": "tasks"},
               {"prefix": "/api/v1/tasks/archive", "resource": "archive"},
               {"prefix": "/caf%C3%A9", "resource": "cafe"}],
    "grants": [{"id": "g1", "peer": "partner-labs", "resources": ["tasks", "cafe"],
                "excluded_resources": ["archive"], "status": "active"}]})");
  RateLimiter limiter;
  struct R {
    const char* target;
    DenyCode code;
    const char* resource;
  };
  const R cases[] = {
      {"/api/v1/tasks", DenyCode::none, "tasks"},
      {"/API/V1/TASKS/1", DenyCode::none, "tasks"},
      {"/aPi/v1/tAsKs/", DenyCode::none, "tasks"},
      {"/api/v1/tasksx", DenyCode::no_route, nullptr},
      {"/api/v1/Tasks/ARCHIVE", DenyCode::resource_excluded, "archive"},
      {"/API/V1/TASKS/Archive/2024", DenyCode::resource_excluded, "archive"},
      {"/api/v1/tasks/archived", DenyCode::none, "tasks"},
      {"/caf%c3%a9/menu", DenyCode::none, "cafe"},
      {"/CAF%C3%A9", DenyCode::none, "cafe"},
      {"/caf%C3%89", DenyCode::no_route, nullptr},  // ASCII only: É is not é
  };
  for (const R& c : cases) {
    INFO(std::string(c.target));
    Call call;
    call.target = c.target;
    Decision d = call.run(*snap, limiter);
    CHECK(d.code == c.code);
    if (c.resource) CHECK(d.resource == c.resource);
  }
}

TEST_CASE("routes: a prefix with an unreserved escape still matches") {
  auto snap = compile_ok(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary"}],
    "routes": [{"prefix": "/api/v1/%7Euser", "resource": "tilde"}],
    "grants": [{"id": "g1", "peer": "partner-labs", "resources": ["tilde"], "status": "active"}]})");
  RateLimiter limiter;
  Call call;
  call.target = "/api/v1/~user/1";
  Decision d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK(d.resource == "tilde");
}

TEST_CASE("routes: longest prefix wins, a catch-all \"/\" takes the rest") {
  auto snap = compile_ok(R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary"}],
    "routes": [{"prefix": "/", "resource": "root"},
               {"prefix": "/a", "resource": "a"},
               {"prefix": "/a/b/", "resource": "ab-dir"},
               {"prefix": "/a/b/c", "resource": "abc"}],
    "grants": [{"id": "g1", "peer": "partner-labs", "resources": ["root", "a", "ab-dir", "abc"],
                "status": "active"}]})");
  RateLimiter limiter;
  struct R {
    const char* target;
    const char* resource;
  };
  const R cases[] = {{"/", "root"},          {"/x", "root"},        {"/ab", "root"},
                     {"/a", "a"},            {"/a/", "a"},          {"/a/b", "a"},
                     {"/a/b/", "ab-dir"},    {"/a/b/x", "ab-dir"},  {"/a/b/c", "abc"},
                     {"/a/b/c/d/e", "abc"},  {"/a/b/cd", "ab-dir"}, {"/a/x/../b/c?q=1", "abc"}};
  for (const R& c : cases) {
    INFO(std::string(c.target));
    Call call;
    call.target = c.target;
    Decision d = call.run(*snap, limiter);
    CHECK(d.allow);
    CHECK(d.resource == c.resource);
  }
}
