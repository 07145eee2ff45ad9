// evaluate (SPEC §3, §4): a table of requests covering every DenyCode in
// decision order, path attacks through routing (targets canonicalized first,
// as the ingress does), case-insensitive routes, grant selection (OID,
// Bearer, only active grant), method overrides, shadow mode, max_rows
// rewriting in every form a framework reads, and a proof that the allow
// path allocates nothing (a counting global operator new).

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "policy_fixture.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;
using namespace fedproxy::policy::testing;

namespace {

// partner-labs: ga (current), gp (pending), gr (revoked), ge (active, expired)
// other-org: go; pinned-org: gpin; blocked-org: gb; expired-org: gx.
std::string evaluate_config(const std::string& extra = "", const std::string& ga_extra = "") {
  return config_json(R"([
    {"id": "ga", "peer": "partner-labs", "resources": ["tasks"], "excluded_resources": ["archive"],
     "methods": ["GET", "HEAD", "POST"], "source_cidrs": ["10.0.0.0/8", "2001:db8::/32"],
     "max_rows_per_query": 100, "filters": {"tasks": {"include_teams": ["t1"]}},
     "status": "active")" + ga_extra + R"(},
    {"id": "gp", "peer": "partner-labs", "resources": ["tasks"], "status": "pending"},
    {"id": "gr", "peer": "partner-labs", "resources": ["tasks"], "status": "revoked"},
    {"id": "ge", "peer": "partner-labs", "resources": ["tasks"], "status": "active",
     "expires_at": "2025-01-01T00:00:00Z"},
    {"id": "go", "peer": "other-org", "resources": ["tasks", "notes"], "status": "active"},
    {"id": "gpin", "peer": "pinned-org", "resources": ["tasks"], "status": "active"},
    {"id": "gb", "peer": "blocked-org", "resources": ["tasks"], "status": "active"},
    {"id": "gx", "peer": "expired-org", "resources": ["tasks"], "status": "active"}])",
                     extra);
}

struct Row {
  const char* name;
  Call call;
  DenyCode code;
  bool allow;
  int status;
  const char* resource = nullptr;  // expected d.resource when set
};

Call with(std::function<void(Call&)> f) {
  Call c;
  f(c);
  return c;
}

}  // namespace

TEST_CASE("decision table: every DenyCode, in decision order") {
  auto snap = compile_ok(evaluate_config());
  RateLimiter limiter;
  limiter.rebind(*snap);
  const std::vector<Row> rows = {
      {"allowed", Call{}, DenyCode::none, true, 200, "tasks"},
      {"allowed: POST listed", with([](Call& c) { c.method = "POST"; }), DenyCode::none, true, 200},
      // identity
      {"san: unknown URI", with([](Call& c) { c.sans = {"spiffe://evil.example/x"}; }),
       DenyCode::san_mismatch, false, 403},
      {"san: no SANs", with([](Call& c) { c.sans = {}; }), DenyCode::san_mismatch, false, 403},
      {"san: byte-for-byte (case)",
       with([](Call& c) { c.sans = {"SPIFFE://partner-labs.example/nodes/primary"}; }),
       DenyCode::san_mismatch, false, 403},
      {"san: byte-for-byte (trailing slash)",
       with([](Call& c) { c.sans = {std::string(kPartnerUri) + "/"}; }), DenyCode::san_mismatch,
       false, 403},
      {"san: prefix only", with([](Call& c) { c.sans = {"spiffe://partner-labs.example/nodes"}; }),
       DenyCode::san_mismatch, false, 403},
      {"san: one of several matches",
       with([](Call& c) { c.sans = {"spiffe://x.example/y", kPartnerUri}; }), DenyCode::none, true,
       200},
      {"san: two different peers is ambiguous",
       with([](Call& c) { c.sans = {kPartnerUri, kOtherUri}; }), DenyCode::san_mismatch, false, 403},
      {"san: a dev peer header is ignored with a certificate",
       with([](Call& c) { c.sans = {"spiffe://evil.example/x"}; c.dev_peer = "partner-labs"; }),
       DenyCode::san_mismatch, false, 403},
      {"fingerprint pin", with([](Call& c) { c.sans = {kPinnedUri}; }),
       DenyCode::fingerprint_mismatch, false, 403},
      {"fingerprint pin matches", with([](Call& c) { c.sans = {kPinnedUri}; c.fingerprint = kPin; }),
       DenyCode::none, true, 200},
      {"peer blocked", with([](Call& c) { c.sans = {"spiffe://blocked.example/nodes/a"}; }),
       DenyCode::peer_blocked, false, 403},
      {"peer expired", with([](Call& c) { c.sans = {"spiffe://expired.example/nodes/a"}; }),
       DenyCode::peer_expired, false, 403},
      {"peer expired: before expiry it works",
       with([](Call& c) {
         c.sans = {"spiffe://expired.example/nodes/a"};
         c.now = 1748735999999;  // 2025-05-31T23:59:59.999Z
       }),
       DenyCode::none, true, 200},
      {"peer expired: at the instant",
       with([](Call& c) {
         c.sans = {"spiffe://expired.example/nodes/a"};
         c.now = 1748736000000;
       }),
       DenyCode::peer_expired, false, 403},
      // grant
      {"grant: OID unknown", with([](Call& c) { c.oid = "nope"; }), DenyCode::unknown_grant, false,
       403},
      {"grant: OID empty", with([](Call& c) { c.oid = ""; }), DenyCode::unknown_grant, false, 403},
      {"grant: Bearer unknown", with([](Call& c) { c.authorization = "Bearer fg-nope"; }),
       DenyCode::unknown_grant, false, 403},
      {"grant: another peer's", with([](Call& c) { c.oid = "go"; }), DenyCode::grant_peer_mismatch,
       false, 403},
      {"grant: another peer's via Bearer", with([](Call& c) { c.authorization = "Bearer fg-go"; }),
       DenyCode::grant_peer_mismatch, false, 403},
      {"grant: pending", with([](Call& c) { c.oid = "gp"; }), DenyCode::grant_inactive, false, 403},
      {"grant: revoked", with([](Call& c) { c.oid = "gr"; }), DenyCode::grant_inactive, false, 403},
      {"grant: expired", with([](Call& c) { c.oid = "ge"; }), DenyCode::grant_expired, false, 403},
      {"grant: OID wins over Bearer",
       with([](Call& c) { c.oid = "gr"; c.authorization = "Bearer fg-ga"; }),
       DenyCode::grant_inactive, false, 403},
      {"grant: Bearer when no OID", with([](Call& c) { c.authorization = "Bearer fg-gr"; }),
       DenyCode::grant_inactive, false, 403},
      // source
      {"source: outside", with([](Call& c) { c.source_ip = "192.168.1.1"; }),
       DenyCode::source_not_allowed, false, 403},
      {"source: v4-mapped inside", with([](Call& c) { c.source_ip = "::ffff:10.200.0.1"; }),
       DenyCode::none, true, 200},
      {"source: IPv6 inside", with([](Call& c) { c.source_ip = "2001:db8::5"; }), DenyCode::none,
       true, 200},
      {"source: IPv6 outside", with([](Call& c) { c.source_ip = "2001:db9::5"; }),
       DenyCode::source_not_allowed, false, 403},
      {"source: missing", with([](Call& c) { c.source_ip = ""; }), DenyCode::source_not_allowed,
       false, 403},
      {"source: garbage", with([](Call& c) { c.source_ip = "10.0.0.1.evil"; }),
       DenyCode::source_not_allowed, false, 403},
      // method
      {"method: DELETE", with([](Call& c) { c.method = "DELETE"; }), DenyCode::method_not_allowed,
       false, 403},
      {"method: case-sensitive", with([](Call& c) { c.method = "get"; }),
       DenyCode::method_not_allowed, false, 403},
      // path and route: targets are canonicalized before evaluate
      {"path: climbs above /", with([](Call& c) { c.target = "/api/../../etc/passwd"; }),
       DenyCode::ambiguous_path, false, 400},
      {"path: invalid escape", with([](Call& c) { c.target = "/api/v1/tasks/%zz"; }),
       DenyCode::bad_request, false, 400},
      {"path: lone %", with([](Call& c) { c.target = "/api/v1/tasks/%"; }), DenyCode::bad_request,
       false, 400},
      {"path: asterisk-form", with([](Call& c) { c.target = "*"; }), DenyCode::bad_request, false,
       400},
      {"path: asterisk-form OPTIONS has no route",
       with([](Call& c) {
         c.target = "*";
         c.method = "OPTIONS";
       }),
       DenyCode::method_not_allowed, false, 403},
      {"path: relative", with([](Call& c) { c.target = "api/v1/tasks"; }), DenyCode::bad_request,
       false, 400},
      {"path: no route", with([](Call& c) { c.target = "/api/v2/tasks"; }), DenyCode::no_route,
       false, 403},
      {"path: segment boundary", with([](Call& c) { c.target = "/api/v1/tasksfoo"; }),
       DenyCode::no_route, false, 403},
      {"path: root", with([](Call& c) { c.target = "/"; }), DenyCode::no_route, false, 403},
      {"path: .. into credentials",
       with([](Call& c) { c.target = "/api/v1/tasks/../credentials"; }),
       DenyCode::resource_not_granted, false, 403, "credentials"},
      {"path: %2e%2e into credentials",
       with([](Call& c) { c.target = "/api/v1/tasks/%2e%2e/credentials"; }),
       DenyCode::resource_not_granted, false, 403, "credentials"},
      {"path: %2E%2E/ into notes", with([](Call& c) { c.target = "/api/v1/tasks/%2E%2E/notes/1"; }),
       DenyCode::resource_not_granted, false, 403, "notes"},
      {"path: an empty segment is a segment",
       with([](Call& c) { c.target = "/api/v1/credentials//../tasks"; }),
       DenyCode::resource_not_granted, false, 403, "credentials"},
      {"path: ..%2f is refused", with([](Call& c) { c.target = "/api/v1/tasks/..%2fcredentials"; }),
       DenyCode::ambiguous_path, false, 400},
      {"path: %2F is refused", with([](Call& c) { c.target = "/api/v1%2Ftasks"; }),
       DenyCode::ambiguous_path, false, 400},
      {"path: ..;/ is refused", with([](Call& c) { c.target = "/api/v1/tasks/..;/credentials"; }),
       DenyCode::ambiguous_path, false, 400},
      {"path: // under path_policy reject",
       with([](Call& c) {
         c.target = "//api//v1//tasks/1";
         c.path_policy = PathPolicy::reject;
       }),
       DenyCode::ambiguous_path, false, 400},
      {"path: // merged under rewrite", with([](Call& c) { c.target = "//api//v1//tasks/1"; }),
       DenyCode::none, true, 200, "tasks"},
      {"path: /./", with([](Call& c) { c.target = "/api/./v1/./tasks"; }), DenyCode::none, true,
       200, "tasks"},
      {"path: query is not part of the path",
       with([](Call& c) { c.target = "/api/v1/tasks?next=/../../credentials"; }), DenyCode::none,
       true, 200, "tasks"},
      {"path: tasks?x matches tasks", with([](Call& c) { c.target = "/api/v1/tasks?x"; }),
       DenyCode::none, true, 200, "tasks"},
      {"path: absolute-form", with([](Call& c) { c.target = "http://acme/api/v1/tasks/7"; }),
       DenyCode::none, true, 200, "tasks"},
      {"path: absolute-form without path", with([](Call& c) { c.target = "HTTPS://acme:8443"; }),
       DenyCode::no_route, false, 403},
      {"path: absolute-form without authority", with([](Call& c) { c.target = "http:///x"; }),
       DenyCode::bad_request, false, 400},
      // routes match ASCII case-insensitively: a case variant is denied alike
      {"route: case variant of a granted route", with([](Call& c) { c.target = "/API/V1/Tasks/7"; }),
       DenyCode::none, true, 200, "tasks"},
      {"route: case variant of an excluded route",
       with([](Call& c) { c.target = "/api/v1/TASKS/Archive/3"; }), DenyCode::resource_excluded,
       false, 403, "archive"},
      {"route: case variant of an ungranted route",
       with([](Call& c) { c.target = "/Api/V1/Credentials"; }), DenyCode::resource_not_granted,
       false, 403, "credentials"},
      {"route: case variant through an escape",
       with([](Call& c) { c.target = "/api/v1/tasks/%41rchive"; }), DenyCode::resource_excluded,
       false, 403, "archive"},
      // resources
      {"resource: excluded (longest prefix)",
       with([](Call& c) { c.target = "/api/v1/tasks/archive/3"; }), DenyCode::resource_excluded,
       false, 403, "archive"},
      {"resource: excluded via //", with([](Call& c) { c.target = "/api/v1/tasks//archive"; }),
       DenyCode::resource_excluded, false, 403, "archive"},
      {"resource: excluded via %61", with([](Call& c) { c.target = "/api/v1/tasks/%61rchive"; }),
       DenyCode::resource_excluded, false, 403, "archive"},
      {"resource: excluded via ./", with([](Call& c) { c.target = "/api/v1/tasks/./archive"; }),
       DenyCode::resource_excluded, false, 403, "archive"},
      {"resource: archiveX is still tasks",
       with([](Call& c) { c.target = "/api/v1/tasks/archiveX"; }), DenyCode::none, true, 200,
       "tasks"},
      {"resource: not granted", with([](Call& c) { c.target = "/api/v1/notes"; }),
       DenyCode::resource_not_granted, false, 403, "notes"},
      {"route: prefix ending in /", with([](Call& c) { c.target = "/static/css/a.css"; }),
       DenyCode::resource_not_granted, false, 403, "static"},
      {"route: prefix ending in /, exact", with([](Call& c) { c.target = "/static/"; }),
       DenyCode::resource_not_granted, false, 403, "static"},
      {"route: prefix ending in /, without it", with([](Call& c) { c.target = "/static"; }),
       DenyCode::no_route, false, 403},
  };
  for (const Row& row : rows) {
    INFO(std::string(row.name));
    Decision d = row.call.run(*snap, limiter);
    CHECK(std::string(to_string(d.code)) == to_string(row.code));
    CHECK(d.allow == row.allow);
    CHECK_FALSE(d.shadow);
    if (!row.allow) {
      CHECK(d.status == row.status);
      CHECK(std::string(d.message).size() > 10);
      CHECK(std::string(d.message).back() == '.');
    }
    CHECK(d.close_connection ==
          (row.code == DenyCode::san_mismatch || row.code == DenyCode::fingerprint_mismatch));
    if (row.resource) CHECK(d.resource == row.resource);
    if (row.code == DenyCode::san_mismatch || row.status == 400) {
      CHECK(d.peer == nullptr);
    } else {
      CHECK(d.peer != nullptr);
    }
  }
}

TEST_CASE("every DenyCode has a name, a status and a message") {
  for (int i = 0; i <= static_cast<int>(DenyCode::untrusted_issuer); ++i) {
    auto c = static_cast<DenyCode>(i);
    CAPTURE(i);
    CHECK(std::string(to_string(c)) != (i == 0 ? "" : "none"));
  }
  CHECK(std::string(to_string(DenyCode::resource_excluded)) == "resource_excluded");
  CHECK(std::string(to_string(TrustLevel::full)) == "full");
  CHECK(std::string(to_string(TrustLevel::none)) == "none");
  CHECK(std::string(to_string(TrustLevel::verified)) == "verified");
}

TEST_CASE("Bearer fg-<id>: parsed, stripped; other credentials are the app's") {
  auto snap = compile_ok(evaluate_config());
  RateLimiter limiter;
  limiter.rebind(*snap);
  struct B {
    const char* auth;
    DenyCode code;
    bool strip;
    const char* grant;
  };
  const B cases[] = {
      {"Bearer fg-ga", DenyCode::none, true, "ga"},
      {"bearer fg-ga", DenyCode::none, true, "ga"},
      {"BEARER   fg-ga  ", DenyCode::none, true, "ga"},
      {"Bearer\tfg-ga", DenyCode::none, true, "ga"},
      {"Bearer fg-gp", DenyCode::grant_inactive, true, "gp"},
      {"Bearer fg-", DenyCode::unknown_grant, true, nullptr},
      {"Bearer FG-ga", DenyCode::none, false, "ga"},  // not ours: the only active grant
      {"Bearer app-token", DenyCode::none, false, "ga"},
      {"Basic dXNlcjpwdw==", DenyCode::none, false, "ga"},
      {"Bearerfg-gp", DenyCode::none, false, "ga"},
      {"Bearer fg-gp extra", DenyCode::none, false, "ga"},
      {"", DenyCode::none, false, "ga"},
  };
  for (const B& b : cases) {
    INFO(std::string(b.auth));
    Call call;
    call.authorization = b.auth;
    Decision d = call.run(*snap, limiter);
    CHECK(d.code == b.code);
    CHECK(d.strip_authorization == b.strip);
    if (b.grant) {
      REQUIRE(d.grant != nullptr);
      CHECK(grant_id(*d.grant) == b.grant);
    } else {
      CHECK(d.grant == nullptr);
    }
  }
  // With an OID the Bearer token is not consulted but is still stripped.
  Call call;
  call.oid = "ga";
  call.authorization = "Bearer fg-gr";
  Decision d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK(d.strip_authorization);
  CHECK(grant_id(*d.grant) == "ga");
}

TEST_CASE("only active grant: one current → it; none or several → unknown_grant") {
  auto make = [](const std::string& grants) { return compile_ok(config_json(grants)); };
  RateLimiter limiter;
  Call call;
  call.source_ip = "192.0.2.1";
  {
    auto snap = make(R"([{"id": "a", "peer": "partner-labs", "resources": ["tasks"], "status": "active"},
                         {"id": "b", "peer": "partner-labs", "resources": ["tasks"], "status": "active"}])");
    CHECK(call.run(*snap, limiter).code == DenyCode::unknown_grant);
    Call by_oid = call;
    by_oid.oid = "b";
    CHECK(by_oid.run(*snap, limiter).allow);
  }
  {
    auto snap = make(R"([{"id": "a", "peer": "partner-labs", "resources": ["tasks"], "status": "pending"},
                         {"id": "b", "peer": "partner-labs", "resources": ["tasks"], "status": "revoked"},
                         {"id": "c", "peer": "other-org", "resources": ["tasks"], "status": "active"}])");
    Decision d = call.run(*snap, limiter);
    CHECK(d.code == DenyCode::unknown_grant);
    CHECK(d.grant == nullptr);
  }
  {
    // One active but expired: reported as such.
    auto snap = make(R"([{"id": "a", "peer": "partner-labs", "resources": ["tasks"], "status": "active",
                          "expires_at": "2025-01-01T00:00:00+02:00"},
                         {"id": "b", "peer": "partner-labs", "resources": ["tasks"], "status": "pending"}])");
    Decision d = call.run(*snap, limiter);
    CHECK(d.code == DenyCode::grant_expired);
    REQUIRE(d.grant != nullptr);
    CHECK(grant_id(*d.grant) == "a");
  }
  {
    // An expired one next to a current one: the current one.
    auto snap = make(R"([{"id": "a", "peer": "partner-labs", "resources": ["tasks"], "status": "active",
                          "expires_at": "2025-01-01T00:00:00Z"},
                         {"id": "b", "peer": "partner-labs", "resources": ["tasks"], "status": "active",
                          "expires_at": "2030-01-01T00:00:00Z"}])");
    Decision d = call.run(*snap, limiter);
    CHECK(d.allow);
    CHECK(grant_id(*d.grant) == "b");
    // Grant expiry is exact to the millisecond.
    Call later = call;
    later.oid = "b";
    later.now = 1893456000000 - 1;  // 2029-12-31T23:59:59.999Z
    CHECK(later.run(*snap, limiter).allow);
    later.now = 1893456000000;
    CHECK(later.run(*snap, limiter).code == DenyCode::grant_expired);
  }
}

TEST_CASE("insecure dev mode: the peer comes from the dev slug when there is no certificate") {
  auto snap = compile_ok(evaluate_config());
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.sans = {};
  call.fingerprint = "";
  call.dev_peer = "partner-labs";
  Decision d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK(d.entity_uri == kPartnerUri);
  call.dev_peer = "nobody-org";
  CHECK(call.run(*snap, limiter).code == DenyCode::san_mismatch);
  // No certificate to pin against in dev mode.
  call.dev_peer = "pinned-org";
  CHECK(call.run(*snap, limiter).allow);
  call.dev_peer = "blocked-org";
  CHECK(call.run(*snap, limiter).code == DenyCode::peer_blocked);
}

TEST_CASE("shadow mode, global: decisions reported, requests pass; identity still enforced") {
  auto snap = compile_ok(evaluate_config(R"("enforce": false)"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  struct S {
    const char* name;
    Call call;
    DenyCode code;
    bool allow;
  };
  const S cases[] = {
      {"allowed", Call{}, DenyCode::none, true},
      {"unknown grant", with([](Call& c) { c.oid = "nope"; }), DenyCode::unknown_grant, true},
      {"revoked", with([](Call& c) { c.oid = "gr"; }), DenyCode::grant_inactive, true},
      {"expired", with([](Call& c) { c.oid = "ge"; }), DenyCode::grant_expired, true},
      {"other peer's", with([](Call& c) { c.oid = "go"; }), DenyCode::grant_peer_mismatch, true},
      {"source", with([](Call& c) { c.source_ip = "192.168.0.1"; }), DenyCode::source_not_allowed,
       true},
      {"method", with([](Call& c) { c.method = "DELETE"; }), DenyCode::method_not_allowed, true},
      {"no route", with([](Call& c) { c.target = "/nowhere"; }), DenyCode::no_route, true},
      {"excluded", with([](Call& c) { c.target = "/api/v1/tasks/archive"; }),
       DenyCode::resource_excluded, true},
      {"not granted", with([](Call& c) { c.target = "/api/v1/notes"; }),
       DenyCode::resource_not_granted, true},
      // never shadowed
      {"san", with([](Call& c) { c.sans = {"spiffe://evil/x"}; }), DenyCode::san_mismatch, false},
      {"pin", with([](Call& c) { c.sans = {kPinnedUri}; }), DenyCode::fingerprint_mismatch, false},
      {"blocked", with([](Call& c) { c.sans = {"spiffe://blocked.example/nodes/a"}; }),
       DenyCode::peer_blocked, false},
      {"peer expired", with([](Call& c) { c.sans = {"spiffe://expired.example/nodes/a"}; }),
       DenyCode::peer_expired, false},
      {"bad path", with([](Call& c) { c.target = "/../x"; }), DenyCode::ambiguous_path, false},
      {"bad path behind a shadowed denial",
       with([](Call& c) {
         c.oid = "nope";
         c.target = "/api/%zz";
       }),
       DenyCode::bad_request, false},
  };
  for (const S& s : cases) {
    INFO(std::string(s.name));
    Decision d = s.call.run(*snap, limiter);
    CHECK(d.code == s.code);
    CHECK(d.allow == s.allow);
    CHECK(d.shadow == (s.allow && s.code != DenyCode::none));
    CHECK_FALSE(d.rewritten_target.has_value());
  }
}

TEST_CASE("shadow mode, per grant") {
  auto snap = compile_ok(evaluate_config("", R"(, "enforce": false)"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.method = "DELETE";
  Decision d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK(d.shadow);
  CHECK(d.code == DenyCode::method_not_allowed);
  CHECK(d.status == 403);  // what it would have been
  REQUIRE(d.grant != nullptr);
  CHECK(grant_id(*d.grant) == "ga");

  // Other grants are enforced.
  Call other;
  other.sans = {kOtherUri};
  other.method = "DELETE";
  Decision o = other.run(*snap, limiter);
  CHECK_FALSE(o.allow);
  CHECK_FALSE(o.shadow);

  // The shadow grant is not rewritten either.
  Call limit;
  limit.target = "/api/v1/tasks?limit=5000";
  Decision l = limit.run(*snap, limiter);
  CHECK(l.allow);
  CHECK(l.code == DenyCode::none);
  CHECK_FALSE(l.rewritten_target.has_value());
}

TEST_CASE("shadow mode on a grant does not revive a revoked grant") {
  auto snap = compile_ok(config_json(R"([{"id": "a", "peer": "partner-labs", "resources": ["tasks"],
      "status": "revoked", "enforce": false}])"));
  RateLimiter limiter;
  Call call;
  call.oid = "a";
  Decision d = call.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK(d.code == DenyCode::grant_inactive);
  // Without an explicit grant id, the peer has no active grant at all.
  CHECK(Call{}.run(*snap, limiter).code == DenyCode::unknown_grant);
}

namespace {

// Each target is allowed; the limit rewrite turns it into `rewritten`
// (nullptr: forwarded unchanged).
struct LimitCase {
  const char* target;
  const char* rewritten;
};

template <size_t N>
void check_limit_rewrites(const LimitCase (&cases)[N]) {
  auto snap = compile_ok(evaluate_config());
  RateLimiter limiter;
  limiter.rebind(*snap);
  for (const LimitCase& m : cases) {
    INFO(std::string(m.target));
    Call call;
    call.target = m.target;
    Decision d = call.run(*snap, limiter);
    REQUIRE(d.allow);
    CHECK(d.code == DenyCode::none);
    if (m.rewritten) {
      REQUIRE(d.rewritten_target.has_value());
      CHECK(*d.rewritten_target == m.rewritten);
    } else {
      CHECK_FALSE(d.rewritten_target.has_value());
    }
  }
}

}  // namespace

TEST_CASE("max_rows: a limit above the grant's maximum is rewritten, the rest byte-identical") {
  const LimitCase cases[] = {
      {"/api/v1/tasks", nullptr},
      {"/api/v1/tasks?", nullptr},
      {"/api/v1/tasks?limit=50", nullptr},
      {"/api/v1/tasks?limit=100", nullptr},
      {"/api/v1/tasks?limit=0100", nullptr},
      {"/api/v1/tasks?limit=101", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=1000&x=1", "/api/v1/tasks?limit=100&x=1"},
      {"/api/v1/tasks?a=%20b&limit=99999999999999999999999&c=", "/api/v1/tasks?a=%20b&limit=100&c="},
      {"/api/v1/tasks?limit=abc", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=0", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=-1", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=1e5", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=+5", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit&x=1", "/api/v1/tasks?limit=100&x=1"},
      {"/api/v1/tasks?limit=5&limit=500", "/api/v1/tasks?limit=5&limit=100"},
      {"/api/v1/tasks?limit=500&limit=5000", "/api/v1/tasks?limit=100&limit=100"},
      {"/api/v1/tasks?%6Cimit=1000", "/api/v1/tasks?%6Cimit=100"},
      {"/api/v1/tasks?limit=%31%30%30%30", "/api/v1/tasks?limit=100"},
      {"/api/v1/tasks?limit=%35%30", nullptr},
      {"/api/v1/tasks?limits=1000&xlimit=1000&limi=1000", nullptr},
      // the rewrite is the whole origin-form to forward: canonical path + query
      {"/api/v1//tasks/../tasks?limit=1000", "/api/v1/tasks?limit=100"},
      {"http://acme:8443/api/v1/tasks?limit=1000", "/api/v1/tasks?limit=100"},
  };
  check_limit_rewrites(cases);
}

TEST_CASE("max_rows: every form an app framework reads as the limit is rewritten") {
  const LimitCase cases[] = {
      {"/api/v1/tasks?LIMIT=1000", "/api/v1/tasks?LIMIT=100"},
      {"/api/v1/tasks?Limit=1000", "/api/v1/tasks?Limit=100"},
      {"/api/v1/tasks?x=1;limit=1000", "/api/v1/tasks?x=1;limit=100"},
      {"/api/v1/tasks?x=1;limit=1000;y=2", "/api/v1/tasks?x=1;limit=100;y=2"},
      {"/api/v1/tasks?limit[]=1000", "/api/v1/tasks?limit[]=100"},
      {"/api/v1/tasks?limit[0]=1000&limit[1]=5", "/api/v1/tasks?limit[0]=100&limit[1]=5"},
      {"/api/v1/tasks?limit%5B%5D=1000", "/api/v1/tasks?limit%5B%5D=100"},
      {"/api/v1/tasks?%4C%49%4D%49%54=1000", "/api/v1/tasks?%4C%49%4D%49%54=100"},
      {"/api/v1/tasks?+limit=1000", "/api/v1/tasks?+limit=100"},
      {"/api/v1/tasks?limit[]", "/api/v1/tasks?limit[]=100"},
      {"/api/v1/tasks?limit=5;LIMIT=5000&limit[]=7", "/api/v1/tasks?limit=5;LIMIT=100&limit[]=7"},
      {"/api/v1/tasks?limit=5;LIMIT=50&limit[]=7", nullptr},
      {"/api/v1/tasks?limit[a]=1000", nullptr},  // a map, not a number, for every framework
      {"/api/v1/tasks?q=limit%3D1000", nullptr},
  };
  check_limit_rewrites(cases);
}

TEST_CASE("max_rows: on_limit reject and a custom parameter name") {
  auto snap = compile_ok(evaluate_config(R"("on_limit": "reject", "limit_param": "page_size")"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  Call call;
  call.target = "/api/v1/tasks?page_size=101";
  Decision d = call.run(*snap, limiter);
  CHECK_FALSE(d.allow);
  CHECK(d.code == DenyCode::limit_exceeded);
  CHECK(d.status == 400);
  CHECK_FALSE(d.rewritten_target.has_value());
  call.target = "/api/v1/tasks?page_size=100&limit=100000";
  d = call.run(*snap, limiter);
  CHECK(d.allow);
  CHECK_FALSE(d.rewritten_target.has_value());
  for (const char* target : {"/api/v1/tasks?PAGE_SIZE=101", "/api/v1/tasks?x;page.size=101",
                             "/api/v1/tasks?page_size[]=0", "/api/v1/tasks?page%5Fsize=100&page_size"}) {
    INFO(target);
    call.target = target;
    CHECK(call.run(*snap, limiter).code == DenyCode::limit_exceeded);
  }
}

TEST_CASE("method overrides: the request method and every override must be granted") {
  auto snap = compile_ok(evaluate_config());  // ga grants GET, HEAD, POST
  RateLimiter limiter;
  limiter.rebind(*snap);
  struct O {
    const char* method;
    std::vector<std::string> headers;
    const char* target;
    bool allowed;
  };
  const O cases[] = {
      {"GET", {}, "/api/v1/tasks", true},
      {"POST", {"GET"}, "/api/v1/tasks", true},
      {"POST", {"get"}, "/api/v1/tasks", true},  // compared upper-cased
      {"GET", {"HEAD", "POST"}, "/api/v1/tasks", true},
      {"POST", {"DELETE"}, "/api/v1/tasks", false},
      {"GET", {"delete"}, "/api/v1/tasks", false},
      {"GET", {"GET", "DELETE"}, "/api/v1/tasks", false},  // every one
      {"GET", {"GET, DELETE"}, "/api/v1/tasks", false},    // not a method token
      {"GET", {""}, "/api/v1/tasks", false},
      {"GET", {"G ET"}, "/api/v1/tasks", false},
      {"DELETE", {"GET"}, "/api/v1/tasks", false},  // the method itself too
      {"POST", {}, "/api/v1/tasks?_method=GET", true},
      {"POST", {}, "/api/v1/tasks?_method=DELETE", false},
      {"POST", {}, "/api/v1/tasks?_method=delete", false},
      {"POST", {}, "/api/v1/tasks?_method=DEL%45TE", false},
      {"POST", {}, "/api/v1/tasks?_METHOD=DELETE", false},
      {"POST", {}, "/api/v1/tasks?%5Fmethod=PUT", false},
      {"POST", {}, "/api/v1/tasks?_method[]=PATCH", false},
      {"POST", {}, "/api/v1/tasks?.method=DELETE", false},
      {"POST", {}, "/api/v1/tasks?x=1;_method=DELETE", false},
      {"POST", {}, "/api/v1/tasks?_method=GET&_method=DELETE", false},
      {"POST", {}, "/api/v1/tasks?_method", false},
      {"POST", {}, "/api/v1/tasks?_method=", false},
      {"POST", {}, "/api/v1/tasks?_method=GET&_method=head", true},
      {"POST", {}, "/api/v1/tasks?method=DELETE", true},  // not an override parameter
      {"POST", {}, "/api/v1/tasks?_method_x=DELETE", true},
  };
  for (const O& o : cases) {
    INFO(o.method << " " << o.target << " overrides " << o.headers.size());
    Call call;
    call.method = o.method;
    call.overrides = o.headers;
    call.target = o.target;
    Decision d = call.run(*snap, limiter);
    CHECK(d.allow == o.allowed);
    CHECK(d.code == (o.allowed ? DenyCode::none : DenyCode::method_not_allowed));
  }
}

TEST_CASE("method override headers: the three names, any case, \"_\" for \"-\"") {
  for (const char* name : {"X-HTTP-Method-Override", "x-http-method-override", "X-HTTP-Method",
                           "X-Method-Override", "X_HTTP_METHOD_OVERRIDE", "x-method_override"}) {
    INFO(name);
    CHECK(is_method_override_header(name));
  }
  for (const char* name : {"X-HTTP-Method-Overrides", "X-Method", "Method", "X-HTTP-Methods", ""}) {
    INFO(name);
    CHECK_FALSE(is_method_override_header(name));
  }
}

TEST_CASE("refuse_target: 400 with the code of the refusal, never shadowed") {
  const Decision amb = refuse_target(TargetStatus::ambiguous_path);
  CHECK_FALSE(amb.allow);
  CHECK(amb.code == DenyCode::ambiguous_path);
  CHECK(amb.status == 400);
  CHECK(std::string(to_string(amb.code)) == "ambiguous_path");
  const Decision bad = refuse_target(TargetStatus::bad_request);
  CHECK(bad.code == DenyCode::bad_request);
  CHECK(bad.status == 400);
  CHECK_FALSE(bad.shadow);
  CHECK(std::string(bad.message).back() == '.');
}

TEST_CASE("policy reload semantics: the snapshot passed in decides") {
  auto before = compile_ok(evaluate_config());
  auto after = compile_ok(config_json(R"([{"id": "ga", "peer": "partner-labs", "resources": ["tasks"],
                                          "status": "revoked"}])"));
  RateLimiter limiter;
  limiter.rebind(*before);
  Call call;
  CHECK(call.run(*before, limiter).allow);
  limiter.rebind(*after);
  CHECK(call.run(*after, limiter).code == DenyCode::unknown_grant);  // no active grant left
  call.oid = "ga";
  CHECK(call.run(*after, limiter).code == DenyCode::grant_inactive);
}

TEST_CASE("the allow path allocates nothing; a rewrite allocates once") {
  auto snap = compile_ok(evaluate_config("", R"(, "rate_limit": {"rps": 1000000, "burst": 1000000})"));
  RateLimiter limiter;
  limiter.rebind(*snap);
  // evaluate alone: the canonical target and the views are made up front.
  auto count = [&](const Call& call, int n, DenyCode want) {
    Prepared p;
    call.prepare(p);
    REQUIRE(p.target.status == TargetStatus::ok);
    REQUIRE(evaluate(*snap, limiter, p.subject, p.info, call.now).code == want);  // warm-up
    const long before = allocation_count();
    for (int i = 0; i < n; ++i) REQUIRE(evaluate(*snap, limiter, p.subject, p.info, call.now).code == want);
    return allocation_count() - before;
  };
  Call call;
  call.target = "/api/v1//tasks/./7?limit=50&x=%2e&_method=GET";
  call.method = "POST";
  call.overrides = {"head"};
  call.authorization = "Bearer fg-ga";
  call.source_ip = "::ffff:10.1.2.3";
  CHECK(count(call, 1000, DenyCode::none) == 0);

  // Denials allocate nothing either.
  Call denied = call;
  denied.target = "/api/v1/notes";
  CHECK(count(denied, 100, DenyCode::resource_not_granted) == 0);
  Call override_denied = call;
  override_denied.overrides = {"DELETE"};
  CHECK(count(override_denied, 100, DenyCode::method_not_allowed) == 0);

  Call rewrite = call;
  rewrite.target = "/api/v1/tasks?limit=100000";
  CHECK(count(rewrite, 1, DenyCode::none) == 1);
  CHECK(rewrite.run(*snap, limiter).rewritten_target == "/api/v1/tasks?limit=100");
}

TEST_CASE("identify: the peer a subject names, without authorizing anything") {
  auto snap = compile_ok(evaluate_config());
  auto who = [&](std::function<void(Subject&)> f) -> std::string {
    Subject s;
    std::vector<std::string> sans{kPartnerUri};
    s.uri_sans = sans;
    s.der_sha256 = "";
    f(s);
    const PeerEntry* p = identify(*snap, s);
    return p ? std::string(peer_slug(*p)) : "(none)";
  };
  CHECK(who([](Subject&) {}) == "partner-labs");
  // Identity only: a blocked or expired peer is still named (evaluate denies it).
  const std::vector<std::string> blocked{"spiffe://blocked.example/nodes/a"};
  const std::vector<std::string> unknown{"spiffe://evil.example/x"};
  const std::vector<std::string> two{kPartnerUri, kOtherUri};
  const std::vector<std::string> pinned{kPinnedUri};
  CHECK(who([&](Subject& s) { s.uri_sans = unknown; }) == "(none)");
  CHECK(who([&](Subject& s) { s.uri_sans = two; }) == "(none)");  // ambiguous
  CHECK(who([&](Subject& s) { s.uri_sans = pinned; }) == "(none)");  // pin differs
  CHECK(who([&](Subject& s) { s.uri_sans = pinned; s.der_sha256 = kPin; }) == "pinned-org");
  CHECK(who([&](Subject& s) { s.uri_sans = {}; s.dev_peer = "pinned-org"; }) == "pinned-org");
  CHECK(who([&](Subject& s) { s.uri_sans = {}; s.dev_peer = "nobody-org"; }) == "(none)");
  CHECK(who([&](Subject& s) { s.uri_sans = blocked; }) == "blocked-org");
}
