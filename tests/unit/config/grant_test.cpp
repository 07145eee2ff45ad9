// config::parse_grant and to_json (config/grant.hpp): one grant object →
// typed Grant + every field problem, with its location and the grant's name;
// and back.
#include "config/grant.hpp"

#include <doctest/doctest.h>
#include <picojson.h>

#include <string>
#include <vector>

using namespace fedproxy::config;

namespace {

GrantParse parse(const std::string& fields) {
  picojson::value v;
  const std::string text = "{" + fields + "}";
  REQUIRE(picojson::parse(v, text).empty());
  return parse_grant(v, "grants[2]");
}

const std::string kBase = R"("id": "g-1", "peer": "partner-labs", "resources": ["tasks"], "status": "active")";

}  // namespace

TEST_CASE("a minimal grant: required fields and the defaults") {
  GrantParse r = parse(kBase);
  CHECK(r.problems.empty());
  const Grant& g = r.grant;
  CHECK(g.id == "g-1");
  CHECK(g.peer == "partner-labs");
  CHECK(g.resources == std::vector<std::string>{"tasks"});
  CHECK(g.excluded_resources.empty());
  CHECK(g.methods == std::vector<std::string>{"GET", "HEAD"});
  CHECK(g.filters == "{}");
  CHECK(g.max_rows_per_query == 500);
  CHECK_FALSE(g.rate_limit.has_value());
  CHECK_FALSE(g.source_cidrs.has_value());
  CHECK_FALSE(g.expires_at.has_value());
  CHECK_FALSE(g.expires_at_ms.has_value());
  CHECK(g.status == GrantStatus::active);
  CHECK_FALSE(g.approved_sensitive);
  CHECK(g.enforce);
  CHECK(g.where == "grants[2]");
}

TEST_CASE("every field typed") {
  GrantParse r = parse(kBase + R"(, "excluded_resources": ["notes"], "methods": ["GET", "POST"],
      "filters": {"tasks": {"team": "Zürich", "a": [1]}}, "max_rows_per_query": 20,
      "rate_limit": {"rps": 2.5}, "source_cidrs": ["10.0.0.0/8", "::1"],
      "expires_at": "2027-04-13T00:00:00Z", "approved_sensitive": true, "enforce": false,
      "_comment": "ignored")");
  INFO(r.problems.size());
  CHECK(r.problems.empty());
  const Grant& g = r.grant;
  CHECK(g.excluded_resources == std::vector<std::string>{"notes"});
  CHECK(g.methods == std::vector<std::string>{"GET", "POST"});
  CHECK(g.filters == R"({"tasks":{"a":[1],"team":"Z\u00fcrich"}})");  // sorted keys, ASCII only
  CHECK(g.max_rows_per_query == 20);
  REQUIRE(g.rate_limit.has_value());
  CHECK(g.rate_limit->rps == 2.5);
  CHECK(g.rate_limit->burst == 3);  // ceil(rps)
  CHECK(g.source_cidrs == std::vector<std::string>{"10.0.0.0/8", "::1"});
  CHECK(g.expires_at == std::optional<std::string>("2027-04-13T00:00:00Z"));
  CHECK(g.expires_at_ms == std::optional<int64_t>(1807574400000));
  CHECK(g.approved_sensitive);
  CHECK_FALSE(g.enforce);
}

TEST_CASE("each field's problems: location and exact wording") {
  struct Case {
    const char* name;
    std::string fields;
    const char* where;
    const char* message;
  };
  const std::string P = R"("peer": "partner-labs", "resources": ["tasks"], "status": "active")";
  const std::vector<Case> cases = {
      {"id required", P, "grants[2].id", "grant grants[2]: id is required"},
      {"id type", R"("id": 5, )" + P, "grants[2].id", "grant grants[2]: id must be a string, got an integer"},
      {"id charset", R"("id": "bad id!", )" + P, "grants[2].id",
       "grant \"bad id!\": id must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~ (a UUID, for example)"},
      {"unknown key", kBase + R"(, "resource": 1)", "grants[2].resource",
       "grant \"g-1\": unknown key \"resource\"; did you mean \"resources\"?"},
      {"peer required", R"("id": "g-1", "resources": ["tasks"], "status": "active")", "grants[2].peer",
       "grant \"g-1\": peer is required"},
      {"peer type", R"("id": "g-1", "peer": [], "resources": ["tasks"], "status": "active")", "grants[2].peer",
       "grant \"g-1\": peer must be a string, got an array"},
      {"status required", R"("id": "g-1", "peer": "p", "resources": ["tasks"])", "grants[2].status",
       "grant \"g-1\": status is required (\"pending\", \"active\" or \"revoked\")"},
      {"status enum", R"("id": "g-1", "peer": "p", "resources": ["tasks"], "status": "on")", "grants[2].status",
       "grant \"g-1\": status must be \"pending\", \"active\" or \"revoked\" (got \"on\")"},
      {"status type", R"("id": "g-1", "peer": "p", "resources": ["tasks"], "status": true)", "grants[2].status",
       "grant \"g-1\": status must be \"pending\", \"active\" or \"revoked\" (got a boolean)"},
      {"approved_sensitive", kBase + R"(, "approved_sensitive": "yes")", "grants[2].approved_sensitive",
       "grant \"g-1\": approved_sensitive must be true or false, got a string"},
      {"enforce", kBase + R"(, "enforce": 0)", "grants[2].enforce",
       "grant \"g-1\": enforce must be true or false, got an integer"},
      {"resources required", R"("id": "g-1", "peer": "p", "status": "active")", "grants[2].resources",
       "grant \"g-1\": resources is required (the resource names this grant covers)"},
      {"resources empty", R"("id": "g-1", "peer": "p", "resources": [], "status": "active")",
       "grants[2].resources", "grant \"g-1\": resources must not be empty"},
      {"resources type", R"("id": "g-1", "peer": "p", "resources": "tasks", "status": "active")",
       "grants[2].resources", "grant \"g-1\": resources must be an array of strings, got a string"},
      {"resources items", R"("id": "g-1", "peer": "p", "resources": [""], "status": "active")",
       "grants[2].resources", "grant \"g-1\": resources must contain only non-empty strings, got \"\""},
      {"resources unique", R"("id": "g-1", "peer": "p", "resources": ["a", "a"], "status": "active")",
       "grants[2].resources", "grant \"g-1\": resources lists \"a\" twice"},
      {"excluded overlap", kBase + R"(, "excluded_resources": ["tasks"])", "grants[2].excluded_resources",
       "grant \"g-1\": resource \"tasks\" is both granted and excluded"},
      {"excluded items", kBase + R"(, "excluded_resources": [1])", "grants[2].excluded_resources",
       "grant \"g-1\": excluded_resources must contain only non-empty strings, got an integer"},
      {"methods empty", kBase + R"(, "methods": [])", "grants[2].methods", "grant \"g-1\": methods must not be empty"},
      {"methods token", kBase + R"(, "methods": ["get"])", "grants[2].methods",
       "grant \"g-1\": method \"get\" must be an uppercase token such as \"GET\""},
      {"filters type", kBase + R"(, "filters": [])", "grants[2].filters",
       "grant \"g-1\": filters must be an object keyed by resource, got an array"},
      {"filters keys", kBase + R"(, "filters": {"notes": {}})", "grants[2].filters",
       "grant \"g-1\": filter key \"notes\" is not one of the grant's resources"},
      {"max rows range", kBase + R"(, "max_rows_per_query": 10001)", "grants[2].max_rows_per_query",
       "grant \"g-1\": max_rows_per_query must be an integer from 1 to 10000 (got 10001)"},
      {"max rows type", kBase + R"(, "max_rows_per_query": "5")", "grants[2].max_rows_per_query",
       "grant \"g-1\": max_rows_per_query must be an integer from 1 to 10000 (got \"5\")"},
      {"rate_limit type", kBase + R"(, "rate_limit": 5)", "grants[2].rate_limit",
       "grant \"g-1\": rate_limit must be an object {\"rps\": ..., \"burst\": ...}, got an integer"},
      {"rate_limit rps required", kBase + R"(, "rate_limit": {"burst": 5})", "grants[2].rate_limit",
       "grant \"g-1\": rate_limit.rps is required"},
      {"rate_limit rps range", kBase + R"(, "rate_limit": {"rps": 0})", "grants[2].rate_limit",
       "grant \"g-1\": rate_limit.rps must be a number above 0 and at most 1000000 (got 0)"},
      {"rate_limit burst", kBase + R"(, "rate_limit": {"rps": 5, "burst": 0})", "grants[2].rate_limit",
       "grant \"g-1\": rate_limit.burst must be an integer from 1 to 1000000 (got 0)"},
      {"rate_limit unknown", kBase + R"(, "rate_limit": {"rps": 5, "brust": 5})", "grants[2].rate_limit",
       "grant \"g-1\": unknown key rate_limit.brust; did you mean \"burst\"?"},
      {"source_cidrs empty", kBase + R"(, "source_cidrs": [])", "grants[2].source_cidrs",
       "grant \"g-1\": source_cidrs must not be empty (omit it or use null to allow any source address)"},
      {"source_cidrs type", kBase + R"(, "source_cidrs": "10.0.0.0/8")", "grants[2].source_cidrs",
       "grant \"g-1\": source_cidrs must be an array of strings, got a string"},
      {"expires_at", kBase + R"(, "expires_at": "2027-04-13")", "grants[2].expires_at",
       "grant \"g-1\": expires_at must be an RFC 3339 timestamp such as \"2027-04-13T00:00:00Z\" (got "
       "\"2027-04-13\")"},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    GrantParse r = parse(c.fields);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].where == c.where);
    CHECK(r.problems[0].message == c.message);
  }
}

TEST_CASE("what needs the whole configuration is not checked here") {
  // An unknown peer, an unrouted or sensitive resource, a bad CIDR: compile_policy's.
  GrantParse r = parse(R"("id": "g-1", "peer": "nobody", "resources": ["credentials", "nope"],
      "status": "active", "source_cidrs": ["10.0.0.1/8"])");
  CHECK(r.problems.empty());
}

TEST_CASE("a non-object is one problem at the grant's location") {
  GrantParse r = parse_grant(picojson::value("g"), "grants[0]");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].to_string() == "grants[0]: must be an object, got a string");
}

TEST_CASE("round trip: parse_grant(to_json(g)) == g") {
  const std::vector<std::string> grants = {
      kBase,
      kBase + R"(, "status": "revoked")",
      R"("id": "x~y.z_1", "peer": "p", "resources": ["a", "b"], "status": "pending",
         "excluded_resources": ["c"], "methods": ["DELETE"], "filters": {"a": {"q": "\u00e9\n"}, "b": null},
         "max_rows_per_query": 1, "rate_limit": {"rps": 0.1, "burst": 7}, "source_cidrs": ["fd00::/8"],
         "expires_at": "2030-01-01T12:00:00.5+02:00", "approved_sensitive": true, "enforce": false)",
      kBase + R"(, "rate_limit": {"rps": 1000000}, "filters": null, "source_cidrs": null)",
  };
  for (const std::string& fields : grants) {
    INFO(fields);
    GrantParse a = parse(fields);
    REQUIRE(a.problems.empty());
    picojson::value v = to_json(a.grant);
    GrantParse b = parse_grant(v, "grants[2]");
    CHECK(b.problems.empty());
    CHECK(b.grant == a.grant);
    // and the text survives a serialisation
    picojson::value again;
    REQUIRE(picojson::parse(again, v.serialize()).empty());
    CHECK(parse_grant(again, "grants[2]").grant == a.grant);
  }
}
