// config::parse_peer and to_json (config/peer.hpp): one peer object → typed
// PeerConfig + every field problem, worded as the config file words them;
// and back.
#include "config/peer.hpp"

#include <doctest/doctest.h>
#include <picojson.h>

#include <string>
#include <vector>

using namespace fedproxy::config;

namespace {

PeerParse parse(const std::string& fields) {
  picojson::value v;
  const std::string text = "{" + fields + "}";
  REQUIRE(picojson::parse(v, text).empty());
  return parse_peer(v, "peers[1]", "/etc/fedproxy");
}

const std::string kFp = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

}  // namespace

TEST_CASE("a peer with every field") {
  PeerParse r = parse(R"("org": "partner-labs", "trust_level": "full", "cert_fingerprint": ")" + kFp + R"(",
      "expires_at": "2027-04-13T00:00:00Z", "allowed_regions": ["eu"], "allowed_artifact_types": [],
      "entity_uri": "spiffe://partner-labs.example/nodes/a", "endpoints": ["https://p.example:8443"],
      "ca_bundle": "peers/p-ca.pem", "trust_domain": "partner-labs.example")");
  CHECK(r.problems.empty());
  const PeerConfig& p = r.peer;
  CHECK(p.org == "partner-labs");
  CHECK(p.trust_level == "full");
  CHECK(p.cert_fingerprint == std::optional<std::string>(kFp));
  CHECK(p.expires_at == std::optional<std::string>("2027-04-13T00:00:00Z"));
  CHECK(p.allowed_regions == std::vector<std::string>{"eu"});
  CHECK(p.allowed_artifact_types == std::vector<std::string>{});
  CHECK(p.entity_uri == std::optional<std::string>("spiffe://partner-labs.example/nodes/a"));
  CHECK(p.endpoints == std::vector<std::string>{"https://p.example:8443"});
  CHECK(p.ca_bundle == "/etc/fedproxy/peers/p-ca.pem");  // relative to base_dir
  CHECK(p.trust_domain == std::optional<std::string>("partner-labs.example"));
}

TEST_CASE("a minimal peer: the defaults") {
  PeerParse r = parse(R"("org": "peer-one", "cert_fingerprint": null, "expires_at": null, "ca_bundle": null)");
  CHECK(r.problems.empty());
  CHECK(r.peer.trust_level == "verified");
  CHECK_FALSE(r.peer.cert_fingerprint.has_value());
  CHECK_FALSE(r.peer.expires_at.has_value());
  CHECK_FALSE(r.peer.allowed_regions.has_value());
  CHECK_FALSE(r.peer.endpoints.has_value());
  CHECK(r.peer.ca_bundle.empty());
}

TEST_CASE("each field's problems: location and wording") {
  struct Case {
    const char* name;
    std::string fields;
    const char* where;
    const char* fragment;
  };
  const std::vector<Case> cases = {
      {"org required", R"("trust_level": "full")", "peers[1].org", "required"},
      {"org type", R"("org": 1)", "peers[1].org", "must be a string, got an integer"},
      {"org slug", R"("org": "Bad_Org")", "peers[1].org", "a-z"},
      {"unknown key", R"("org": "peer-one", "trust_levle": "full")", "peers[1].trust_levle",
       "unknown key; did you mean \"trust_level\"?"},
      {"trust_level enum", R"("org": "peer-one", "trust_level": "ful")", "peers[1].trust_level",
       "must be one of none, verified, full (got \"ful\"); did you mean \"full\"?"},
      {"fingerprint colons", R"("org": "peer-one", "cert_fingerprint": "aa:bb")", "peers[1].cert_fingerprint",
       "remove the ':' separators"},
      {"fingerprint case", R"("org": "peer-one", "cert_fingerprint": ")" + std::string(64, 'A') + "\"",
       "peers[1].cert_fingerprint", "use lowercase"},
      {"expires_at", R"("org": "peer-one", "expires_at": "2027-04-13t00:00:00z")", "peers[1].expires_at",
       "must be an RFC 3339 timestamp such as \"2027-04-13T00:00:00Z\" (got \"2027-04-13t00:00:00z\")"},
      {"allowed_regions type", R"("org": "peer-one", "allowed_regions": "eu")", "peers[1].allowed_regions",
       "must be an array of strings or null, got a string"},
      {"allowed_artifact_types item", R"("org": "peer-one", "allowed_artifact_types": [""])",
       "peers[1].allowed_artifact_types[0]", "must not be empty"},
      {"entity_uri", R"("org": "peer-one", "entity_uri": "no-scheme")", "peers[1].entity_uri", ""},
      {"endpoints", R"("org": "peer-one", "endpoints": ["ftp://x"])", "peers[1].endpoints[0]", ""},
      {"ca_bundle", R"("org": "peer-one", "ca_bundle": 5)", "peers[1].ca_bundle",
       "must be a path string or null, got an integer"},
      {"trust_domain", R"("org": "peer-one", "trust_domain": "Bad Domain")", "peers[1].trust_domain", ""},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    PeerParse r = parse(c.fields);
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].where == c.where);
    CHECK(r.problems[0].message.find(c.fragment) != std::string::npos);
  }
}

TEST_CASE("round trip: parse_peer(to_json(p)) == p") {
  const std::vector<std::string> peers = {
      R"("org": "peer-one")",
      R"("org": "peer-two", "trust_level": "none", "cert_fingerprint": ")" + kFp + R"(",
         "expires_at": "2030-01-01T00:00:00+02:00", "allowed_regions": [], "allowed_artifact_types": ["a", "b"],
         "entity_uri": "spiffe://p2.example/x", "endpoints": ["https://p2.example"], "ca_bundle": "/abs/ca.pem",
         "trust_domain": "p2.example")",
  };
  for (const std::string& fields : peers) {
    INFO(fields);
    PeerParse a = parse(fields);
    REQUIRE(a.problems.empty());
    PeerParse b = parse_peer(to_json(a.peer), "peers[1]", "/elsewhere");
    CHECK(b.problems.empty());
    CHECK(b.peer == a.peer);
  }
}
