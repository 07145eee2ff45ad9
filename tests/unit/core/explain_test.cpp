// core::explain: the decision, code, grant, route, target and headers of a
// request that was never sent, from the live request's own code. Table-driven
// over every denial explain can meet, plus the allow paths (a limit rewrite,
// a path rewritten under path_policy "rewrite", shadow mode) and the
// guarantee that explain takes no token from the live rate-limit buckets.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"
#include "proxy/core/explain.hpp"
#include "proxy/core/policy_authorizer.hpp"
#include "proxy/http1/message.hpp"
#include "proxy/tls/peer_identity.hpp"
#include "tests/unit/policy/policy_fixture.hpp"

namespace fedproxy::core {
namespace {

using policy::testing::compile_ok;
using policy::testing::config_json;
using policy::testing::kGrantA;
using policy::testing::kGrantB;
using policy::testing::kNow;
using policy::testing::parse_ok;

constexpr const char* kPending = "22222222-2222-2222-2222-222222222222";
constexpr const char* kExpired = "33333333-3333-3333-3333-333333333333";
constexpr const char* kCidr = "44444444-4444-4444-4444-444444444444";
constexpr const char* kOther = "55555555-5555-5555-5555-555555555555";
constexpr const char* kPinned = "66666666-6666-6666-6666-666666666666";
constexpr const char* kShadow = "77777777-7777-7777-7777-777777777777";
constexpr const char* kRate = "88888888-8888-8888-8888-888888888888";
constexpr const char* kAnchorSpki = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
constexpr const char* kNodeCaSpki = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

std::string grants() {
  // Every grant active unless it says otherwise.
  auto grant = [](const char* id, const std::string& fields) {
    return policy::testing::grant(id, fields.find("\"status\"") == std::string::npos ? "\"status\": \"active\", " + fields : fields);
  };
  return "[" +
         grant(kGrantA, R"("peer": "partner-labs", "resources": ["tasks", "notes"], "excluded_resources": ["archive"],
                 "methods": ["GET", "HEAD"], "max_rows_per_query": 100,
                 "filters": {"tasks": {"include_teams": ["t1"]}})") +
         "," + grant(kGrantB, R"("peer": "partner-labs", "resources": ["tasks"])") + "," +
         grant(kPending, R"("peer": "partner-labs", "resources": ["tasks"], "status": "pending")") + "," +
         grant(kExpired, R"("peer": "partner-labs", "resources": ["tasks"], "expires_at": "2025-01-01T00:00:00Z")") +
         "," + grant(kCidr, R"("peer": "partner-labs", "resources": ["tasks"], "source_cidrs": ["10.0.0.0/8"])") +
         "," + grant(kOther, R"("peer": "other-org", "resources": ["tasks"])") + "," +
         grant(kPinned, R"("peer": "pinned-org", "resources": ["tasks"])") + "," +
         grant(kShadow, R"("peer": "partner-labs", "resources": ["tasks"], "methods": ["GET"], "enforce": false)") +
         "," +
         grant(kRate, R"("peer": "partner-labs", "resources": ["tasks"], "rate_limit": {"rps": 1, "burst": 1})") +
         "]";
}

// other-org has trust anchors of its own; the others fall back to the node CA.
std::shared_ptr<const policy::Snapshot> snapshot(const std::string& extra = "") {
  policy::PeerAnchors anchors;
  policy::AnchorInfo a;
  a.subject = "CN=Other Org CA";
  a.spki_sha256 = kAnchorSpki;
  anchors["other-org"].push_back(a);
  const std::vector<std::string> ca_bundle{kNodeCaSpki};
  policy::CompileResult r = policy::compile_policy(parse_ok(config_json(grants(), extra)), {}, anchors, ca_bundle);
  INFO(policy::testing::dump(r));
  REQUIRE(r.snapshot != nullptr);
  return r.snapshot;
}

const std::vector<std::string> kCaBundle{kNodeCaSpki};

ExplainSetup setup_of(std::shared_ptr<const policy::Snapshot> s,
                      config::PathPolicy path_policy = config::PathPolicy::reject) {
  ExplainSetup setup;
  setup.policy = std::move(s);
  setup.http.path_policy = path_policy;
  setup.ca_bundle_spki = kCaBundle;
  return setup;
}

ExplainQuery query(const char* peer, const char* method, const char* target, const char* grant = nullptr,
                   const char* source = "127.0.0.1") {
  ExplainQuery q;
  q.peer = peer;
  q.method = method;
  q.target = target;
  if (grant) q.grant = grant;
  q.source = source;
  return q;
}

std::optional<std::string> header(const Explanation& e, std::string_view name) {
  for (const auto& [n, v] : e.headers) {
    if (n == name) return v;
  }
  return std::nullopt;
}

struct Row {
  const char* name;
  ExplainQuery q;
  const char* error;  // "" = allowed without a code
  int status;
  const char* grant;  // "" = none
  const char* route;  // prefix, "" = none
};

TEST_CASE("explain: every denial, with its code, status, grant and route") {
  auto s = snapshot();
  const std::vector<Row> rows = {
      {"unknown peer", query("stranger-org", "GET", "/api/v1/tasks"), "san_mismatch", 403, "", ""},
      {"blocked", query("blocked-org", "GET", "/api/v1/tasks"), "peer_blocked", 403, "", ""},
      {"expired peer", query("expired-org", "GET", "/api/v1/tasks"), "peer_expired", 403, "", ""},
      {"unknown grant", query("partner-labs", "GET", "/api/v1/tasks", "99999999-0000-0000-0000-000000000000"),
       "unknown_grant", 403, "", ""},
      {"several active grants, none named", query("partner-labs", "GET", "/api/v1/tasks"), "unknown_grant", 403, "",
       ""},
      {"pending", query("partner-labs", "GET", "/api/v1/tasks", kPending), "grant_inactive", 403, kPending, ""},
      {"expired grant", query("partner-labs", "GET", "/api/v1/tasks", kExpired), "grant_expired", 403, kExpired, ""},
      {"other peer's grant", query("partner-labs", "GET", "/api/v1/tasks", kOther), "grant_peer_mismatch", 403, "",
       ""},
      {"source", query("partner-labs", "GET", "/api/v1/tasks", kCidr, "192.168.1.1"), "source_not_allowed", 403,
       kCidr, ""},
      {"method", query("partner-labs", "DELETE", "/api/v1/tasks/1", kGrantA), "method_not_allowed", 403, kGrantA, ""},
      {"no route", query("partner-labs", "GET", "/nothing", kGrantA), "no_route", 403, kGrantA, ""},
      {"not granted", query("partner-labs", "GET", "/static/x", kGrantA), "resource_not_granted", 403, kGrantA,
       "/static/"},
      {"excluded (escaped, upper case)", query("partner-labs", "GET", "/API/v1/tasks/%61rchive/1", kGrantA),
       "resource_excluded", 403, kGrantA, "/api/v1/tasks/archive"},
      {"dot segment", query("partner-labs", "GET", "/api/v1/tasks/../credentials", kGrantA), "ambiguous_path", 400,
       "", ""},
      {"encoded slash", query("partner-labs", "GET", "/api/v1/tasks%2f1", kGrantA), "ambiguous_path", 400, "", ""},
      {"asterisk for GET", query("partner-labs", "GET", "*", kGrantA), "bad_request", 400, "", ""},
      {"authority-form", query("partner-labs", "GET", "example.com:443", kGrantA), "bad_request", 400, "", ""},
      {"allowed", query("partner-labs", "GET", "/api/v1/tasks/1", kGrantA), "", 200, kGrantA, "/api/v1/tasks"},
      {"pinned peer (the pin is synthesised)", query("pinned-org", "GET", "/api/v1/tasks"), "", 200, kPinned,
       "/api/v1/tasks"},
      {"peer with anchors (the chain is synthesised)", query("other-org", "GET", "/api/v1/tasks"), "", 200, kOther,
       "/api/v1/tasks"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    const Explanation e = explain(setup_of(s), row.q, kNow);
    CHECK(e.error == row.error);
    CHECK(e.status == row.status);
    CHECK(e.allow == (row.status == 200));
    CHECK(e.grant == row.grant);
    CHECK(e.route.has_value() == (*row.route != '\0'));
    if (e.route) CHECK(e.route->first == row.route);
    CHECK(!e.message.empty());
    if (!e.allow) {
      CHECK(e.headers.empty());
      CHECK(explanation_json(e).find("\"decision\":\"deny\"") != std::string::npos);
      CHECK(explanation_json(e).find("\"target\":null") != std::string::npos);
    }
  }
}

TEST_CASE("explain: the peer is named once identified, also on a refused target") {
  auto s = snapshot();
  CHECK(explain(setup_of(s), query("blocked-org", "GET", "/api/v1/tasks"), kNow).peer == "blocked-org");
  CHECK(explain(setup_of(s), query("partner-labs", "GET", "/a/../b"), kNow).peer == "partner-labs");
  CHECK(explain(setup_of(s), query("stranger-org", "GET", "/api/v1/tasks"), kNow).peer.empty());
}

TEST_CASE("explain: an allowed request's target and headers, in the order the app gets them") {
  auto s = snapshot();
  const Explanation e = explain(setup_of(s), query("partner-labs", "GET", "/api/v1/tasks/1?x=1", kGrantA), kNow);
  REQUIRE(e.allow);
  CHECK(e.target == "/api/v1/tasks/1?x=1");
  std::vector<std::string> names;
  for (const auto& h : e.headers) names.push_back(h.first);
  const std::vector<std::string> expected = {
      "Host", "X-Federation-Peer", "X-Federation-Trust", "X-Federation-Allowed-Regions", "X-Federation-Entity",
      "X-Federation-Grant", "X-Federation-Max-Rows", "X-Federation-Scope", "X-Federation-Resource",
      "X-Forwarded-Client-Cert", "X-Request-Id", "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "Connection"};
  CHECK(names == expected);
  CHECK(header(e, "Host") == std::string(kExplainHost));
  CHECK(header(e, "X-Federation-Peer") == "partner-labs");
  CHECK(header(e, "X-Federation-Entity") == std::string(policy::testing::kPartnerUri));
  CHECK(header(e, "X-Federation-Grant") == std::string(kGrantA));
  CHECK(header(e, "X-Federation-Max-Rows") == "100");
  CHECK(header(e, "X-Federation-Scope") == R"({"tasks":{"include_teams":["t1"]}})");
  CHECK(header(e, "X-Federation-Resource") == "tasks");
  CHECK(header(e, "X-Request-Id") == std::string(kExplainRequestId));
  CHECK(header(e, "X-Forwarded-For") == "127.0.0.1");
  CHECK(header(e, "X-Forwarded-Proto") == "https");
  CHECK(header(e, "X-Forwarded-Client-Cert") ==
        std::string("Hash=") + kExplainCertHash + ";URI=" + policy::testing::kPartnerUri);
  // The Bearer grant token is a federation credential: never forwarded.
  CHECK_FALSE(header(e, "Authorization"));
  const std::string json = explanation_json(e);
  CHECK(json.find(R"("decision":"allow","error":null,"status":200)") != std::string::npos);
  CHECK(json.find(R"("route":{"prefix":"/api/v1/tasks","resource":"tasks"})") != std::string::npos);
}

TEST_CASE("explain: a pinned peer's certificate hash is its pin") {
  auto s = snapshot();
  const Explanation e = explain(setup_of(s), query("pinned-org", "GET", "/api/v1/tasks"), kNow);
  REQUIRE(e.allow);
  CHECK(header(e, "X-Forwarded-Client-Cert") ==
        std::string("Hash=") + policy::testing::kPin + ";URI=" + policy::testing::kPinnedUri);
}

TEST_CASE("explain: a limit above the grant's maximum is rewritten, or refused with on_limit reject") {
  const auto q = query("partner-labs", "GET", "/api/v1/tasks?a=1&limit=5000&LIMIT[]=7&b=2", kGrantA);
  const Explanation e = explain(setup_of(snapshot()), q, kNow);
  REQUIRE(e.allow);
  CHECK(e.target == "/api/v1/tasks?a=1&limit=100&LIMIT[]=7&b=2");
  CHECK(header(e, "X-Federation-Max-Rows") == "100");
  const Explanation r = explain(setup_of(snapshot(R"("on_limit": "reject")")), q, kNow);
  CHECK_FALSE(r.allow);
  CHECK(r.error == "limit_exceeded");
  CHECK(r.status == 400);
}

TEST_CASE("explain: path_policy rewrite forwards the canonical path; reject refuses it") {
  auto s = snapshot();
  const auto q = query("partner-labs", "GET", "/api/v1//notes/./x/../7?q=%2e", kGrantA);
  const Explanation rewritten = explain(setup_of(s, config::PathPolicy::rewrite), q, kNow);
  REQUIRE(rewritten.allow);
  CHECK(rewritten.target == "/api/v1/notes/7?q=%2e");
  CHECK(rewritten.route->second == "notes");
  const Explanation refused = explain(setup_of(s), q, kNow);
  CHECK(refused.error == "ambiguous_path");
  CHECK(refused.message.find("refused:") != std::string::npos);  // with the canonicalizer's detail
}

TEST_CASE("explain: shadow mode forwards and still reports the code") {
  auto s = snapshot();
  const Explanation g = explain(setup_of(s), query("partner-labs", "DELETE", "/api/v1/tasks/1", kShadow), kNow);
  CHECK(g.allow);
  CHECK(g.shadow);
  CHECK(g.error == "method_not_allowed");
  CHECK(g.status == 200);
  CHECK(g.target == "/api/v1/tasks/1");
  CHECK(header(g, "X-Federation-Grant") == std::string(kShadow));
  CHECK(explanation_json(g).find(R"("decision":"allow","error":"method_not_allowed")") != std::string::npos);
  // Global shadow: grant denials pass, identity does not.
  auto global = snapshot(R"("enforce": false)");
  const Explanation m = explain(setup_of(global), query("partner-labs", "GET", "/static/x", kGrantA), kNow);
  CHECK(m.allow);
  CHECK(m.shadow);
  CHECK(m.error == "resource_not_granted");
  const Explanation blocked = explain(setup_of(global), query("blocked-org", "GET", "/api/v1/tasks"), kNow);
  CHECK_FALSE(blocked.allow);
  CHECK(blocked.error == "peer_blocked");
}

TEST_CASE("explain: rate limits are reported, checked on a full bucket, never taken from the live one") {
  auto s = snapshot();
  // The live limiter, shared as the workers share it.
  auto limiter = std::make_shared<policy::RateLimiter>();
  limiter->rebind(*s);
  PolicyAuthorizer live(s, false, limiter);
  // burst 1: explain may be asked any number of times and always sees a full bucket.
  for (int i = 0; i < 3; ++i) {
    const Explanation e = explain(setup_of(s), query("partner-labs", "GET", "/api/v1/tasks", kRate), kNow);
    CHECK(e.allow);
    REQUIRE(e.rate_limit.has_value());
    CHECK(e.rate_limit->burst == 1);
    CHECK(explanation_json(e).find(R"("simulated":false)") != std::string::npos);
  }
  // ... and the live bucket still holds its one token.
  tls::PeerIdentity id;
  id.present = true;
  id.uri_sans = {policy::testing::kPartnerUri};
  id.chain_spki_sha256 = {kNodeCaSpki};
  http1::RequestHead head;
  head.method = "GET";
  head.target = "/api/v1/tasks";
  head.headers = {{"Host", "x"}, {"Authorization", std::string("Bearer fg-") + kRate}};
  const config::TargetResult t = config::canonicalize_target(head.target, head.method, config::PathPolicy::reject);
  const RequestView view{id, head, "127.0.0.1", "rid", kNow, &t.target};
  CHECK(live.decide(view).allow);
  const policy::Decision second = live.decide(view);
  CHECK_FALSE(second.allow);
  CHECK(second.code == policy::DenyCode::rate_limited);
  CHECK_FALSE(explain(setup_of(s), query("partner-labs", "GET", "/api/v1/tasks", kGrantA), kNow).rate_limit);
}

TEST_CASE("explain: insecure mode names the peer by X-Federation-Dev-Peer, forwards over http") {
  auto setup = setup_of(snapshot());
  setup.insecure = true;
  const Explanation e = explain(setup, query("partner-labs", "GET", "/api/v1/tasks", kGrantA), kNow);
  REQUIRE(e.allow);
  CHECK(header(e, "X-Federation-Peer") == "partner-labs");
  CHECK(header(e, "X-Forwarded-Proto") == "http");
  CHECK_FALSE(header(e, "X-Forwarded-Client-Cert"));
  CHECK_FALSE(header(e, "X-Federation-Dev-Peer"));  // stripped like any X-Federation-* a client sends
}

TEST_CASE("explain: the node manifest is answered by fedproxy") {
  const Explanation e =
      explain(setup_of(snapshot()), query("partner-labs", "GET", "/.well-known/fedproxy-manifest.json"), kNow);
  CHECK(e.allow);
  CHECK(e.answered_by_fedproxy);
  CHECK(e.headers.empty());
}

TEST_CASE("explain: queries that no client could send are refused") {
  struct Bad {
    ExplainQuery q;
    const char* fragment;
  };
  const std::vector<Bad> bad = {
      {query("", "GET", "/"), "peer"},
      {query("a b", "GET", "/"), "peer"},
      {query("p", "", "/"), "method"},
      {query("p", "G ET", "/"), "method"},
      {query("p", "GET", ""), "target"},
      {query("p", "GET", "/a b"), "target"},
      {query("p", "GET", "/a\r\nX: y"), "target"},
      {query("p", "GET", "/", ""), "grant"},
      {query("p", "GET", "/", nullptr, "not-an-ip"), "source"},
      {query("p", "GET", "/", nullptr, "10.0.0.300"), "source"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.q.target);
    auto problem = explain_query_problem(b.q);
    REQUIRE(problem.has_value());
    CHECK(problem->find(b.fragment) != std::string::npos);
  }
  CHECK_FALSE(explain_query_problem(query("p", "GET", "/", "g", "::1")));
}

}  // namespace
}  // namespace fedproxy::core
