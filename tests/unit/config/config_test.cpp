// Unit tests for config/config (SPEC §11): parsing, every validation rule,
// problem locations, paths and environment overrides, endpoints.

#include "config/config.hpp"
#include "config/grant.hpp"

#include <doctest/doctest.h>
#include <picojson.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace fedproxy::config;
namespace fs = std::filesystem;

namespace {

const std::string kNode =
    R"("node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"})";

// A config with the required node section plus `extra` top-level members.
std::string with(const std::string& extra) {
  return "{" + kNode + (extra.empty() ? "" : ", " + extra) + "}";
}

ConfigResult parse(const std::string& json, const EnvOverrides& env = {}) {
  return parse_config(json, "/etc/fedproxy", env);
}

std::string dump(const ConfigResult& r) {
  std::string out;
  for (const auto& p : r.problems) out += "  " + p.to_string() + "\n";
  return out;
}

// The problem at `where` whose message contains `fragment`, or nullptr.
const ConfigProblem* find_problem(const ConfigResult& r, const std::string& where,
                                  const std::string& fragment = "") {
  for (const auto& p : r.problems) {
    if (p.where == where && p.message.find(fragment) != std::string::npos) return &p;
  }
  return nullptr;
}

void require_ok(const ConfigResult& r) {
  INFO("problems:\n" << dump(r));
  REQUIRE(r.problems.empty());
  REQUIRE(r.config.has_value());
}

// The §11 example, with grants as in §4.
const char* kSpecExample = R"({
  "node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
  "tls": {"cert": "tls/node.crt", "key": "tls/node.key", "ca_bundle": "tls/ca.crt",
          "crl": null, "crl_fail_open": false, "watch_interval_ms": 5000},
  "ingress": {"listen": "0.0.0.0:8443", "upstream": "127.0.0.1:8080"},
  "egress": {"listen": "127.0.0.1:15001"},
  "admin": {"listen": "127.0.0.1:9901"},
  "workers": 1,
  "manifests_dir": "peers/",
  "peers": [{"org": "partner-labs", "trust_level": "verified",
             "ca_bundle": "peers/partner-labs-ca.pem", "trust_domain": "partner-labs.example",
             "cert_fingerprint": null, "expires_at": null,
             "allowed_regions": null, "allowed_artifact_types": null}],
  "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"}],
  "grants": [{"id": "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab", "peer": "partner-labs",
              "resources": ["tasks","notes"], "excluded_resources": [],
              "methods": ["GET","HEAD"],
              "filters": {"tasks": {"include_teams": ["t1"], "include_personal": true}},
              "max_rows_per_query": 500, "rate_limit": {"rps": 50, "burst": 100},
              "source_cidrs": ["10.0.0.0/8"], "expires_at": "2027-04-13T00:00:00Z",
              "status": "active", "approved_sensitive": false}],
  "audit": {"path": "audit.jsonl", "on_failure": "reject"},
  "limits": {"max_connections": 10000, "max_header_bytes": 16384},
  "timeouts": {"handshake_ms": 10000, "header_ms": 10000, "idle_ms": 60000,
               "upstream_connect_ms": 5000, "upstream_response_ms": 60000}
})";

}  // namespace

TEST_CASE("the SPEC §11 example parses and every field comes out right") {
  auto r = parse(kSpecExample);
  require_ok(r);
  const Config& c = *r.config;
  CHECK(c.path == "");
  CHECK(c.dir == "/etc/fedproxy");
  CHECK(c.node.org == "acme-corp");
  CHECK(c.node.entity_uri == "spiffe://acme.example/nodes/a");
  CHECK(c.tls.cert == "/etc/fedproxy/tls/node.crt");
  CHECK(c.tls.key == "/etc/fedproxy/tls/node.key");
  CHECK(c.tls.ca_bundle == "/etc/fedproxy/tls/ca.crt");
  CHECK(c.tls.crl == "");
  CHECK(c.tls.crl_fail_open == false);
  CHECK(c.tls.watch_interval_ms == 5000);
  CHECK(c.ingress.listen.kind == Endpoint::Kind::tcp);
  CHECK(c.ingress.listen.host == "0.0.0.0");
  CHECK(c.ingress.listen.port == 8443);
  CHECK(c.ingress.upstream.host == "127.0.0.1");
  CHECK(c.ingress.upstream.port == 8080);
  REQUIRE(c.egress.listen.has_value());
  CHECK(c.egress.listen->port == 15001);
  REQUIRE(c.admin.listen.has_value());
  CHECK(c.admin.listen->text == "127.0.0.1:9901");
  CHECK(c.workers == 1);
  CHECK(c.manifests_dir == "/etc/fedproxy/peers");
  REQUIRE(c.peers.size() == 1);
  CHECK(c.peers[0].org == "partner-labs");
  CHECK(c.peers[0].trust_level == "verified");
  CHECK_FALSE(c.peers[0].cert_fingerprint.has_value());
  CHECK(c.peers[0].ca_bundle == "/etc/fedproxy/peers/partner-labs-ca.pem");  // relative to the config file
  CHECK(c.peers[0].trust_domain == std::optional<std::string>("partner-labs.example"));
  CHECK_FALSE(c.peers[0].expires_at.has_value());
  CHECK_FALSE(c.peers[0].allowed_regions.has_value());
  CHECK_FALSE(c.peers[0].allowed_artifact_types.has_value());
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].prefix == "/api/v1/tasks");
  CHECK(c.routes[0].resource == "tasks");
  CHECK(c.routes[0].sensitive == false);
  REQUIRE(c.grants.size() == 1);
  CHECK(c.grants[0].where == "grants[0]");
  CHECK(c.grant_problems.empty());
  const Grant& g = c.grants[0];
  CHECK(g.id == "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab");
  CHECK(g.peer == "partner-labs");
  CHECK(g.resources == std::vector<std::string>{"tasks", "notes"});
  CHECK(g.max_rows_per_query == 500);
  CHECK(g.filters == R"({"tasks":{"include_personal":true,"include_teams":["t1"]}})");
  CHECK(g.rate_limit == RateLimit{50, 100});
  CHECK(g.source_cidrs == std::vector<std::string>{"10.0.0.0/8"});
  CHECK(g.expires_at == std::optional<std::string>("2027-04-13T00:00:00Z"));
  CHECK(g.status == GrantStatus::active);
  CHECK(c.audit.path == "/etc/fedproxy/audit.jsonl");
  CHECK(c.audit.on_failure == AuditConfig::OnFailure::reject);
  CHECK(c.limits.max_connections == 10000);
  CHECK(c.limits.max_header_bytes == 16384);
  CHECK(c.timeouts.handshake_ms == 10000);
  CHECK(c.timeouts.header_ms == 10000);
  CHECK(c.timeouts.idle_ms == 60000);
  CHECK(c.timeouts.upstream_connect_ms == 5000);
  CHECK(c.timeouts.upstream_response_ms == 60000);
}

TEST_CASE("defaults of a minimal config") {
  auto r = parse(with(""));
  require_ok(r);
  const Config& c = *r.config;
  CHECK(c.tls.cert == "");
  CHECK(c.tls.key == "");
  CHECK(c.tls.ca_bundle == "");
  CHECK(c.tls.crl == "");
  CHECK(c.tls.crl_fail_open == false);
  CHECK(c.tls.watch_interval_ms == 5000);
  CHECK(c.tls.ticket_rotation_ms == 3600000);
  CHECK(c.tls.session_tickets == true);
  CHECK(c.ingress.listen.text == "0.0.0.0:8443");
  CHECK(c.ingress.listen.port == 8443);
  CHECK(c.ingress.upstream.text == "127.0.0.1:8080");
  CHECK(c.ingress.upstream_pool_max_idle == 256);
  REQUIRE(c.egress.listen.has_value());
  CHECK(c.egress.listen->text == "127.0.0.1:15001");
  CHECK(c.egress.allow_non_loopback == false);
  CHECK(c.egress.dns_ttl_ms == 30000);
  CHECK(c.egress.dns_negative_ttl_ms == 5000);
  REQUIRE(c.admin.listen.has_value());
  CHECK(c.admin.listen->text == "127.0.0.1:9901");
  CHECK(c.workers == 1);
  CHECK(c.manifests_dir == "");
  CHECK(c.peers.empty());
  CHECK(c.routes.empty());
  CHECK(c.grants.empty());
  CHECK(c.audit.path == "");
  CHECK(c.audit.on_failure == AuditConfig::OnFailure::reject);
  CHECK(c.limits.max_connections == 10000);
  CHECK(c.limits.max_header_bytes == 16384);
  CHECK(c.limits.max_request_line_bytes == 8192);
  CHECK(c.limits.max_header_count == 100);
  CHECK(c.limits.max_conn_lifetime_ms == 0);
  CHECK(c.limits.max_requests_per_conn == 0);
  CHECK(c.limits.max_chunk_extension_bytes == 1024);
  CHECK(c.limits.max_chunk_extension_bytes_per_message == 16384);
  CHECK(c.timeouts.shutdown_grace_ms == 10000);
  CHECK(c.enforce == true);
  CHECK(c.limit_param == "limit");
  CHECK(c.on_limit == "rewrite");
}

TEST_CASE("every additional key is accepted and read") {
  auto r = parse(with(R"(
    "$schema": "https://example/fedproxy.schema.json", "_comment": ["anything", 1],
    "tls": {"ticket_rotation_ms": 60000, "session_tickets": false, "crl": "crl.pem",
            "crl_fail_open": true, "watch_interval_ms": 250},
    "ingress": {"listen": "[::]:0", "upstream": "unix:/run/app.sock", "upstream_pool_max_idle": 0},
    "egress": {"listen": "0.0.0.0:15001", "allow_non_loopback": true},
    "limits": {"max_request_line_bytes": 4096, "max_header_count": 50,
               "max_conn_lifetime_ms": 600000, "max_requests_per_conn": 1000,
               "max_chunk_extension_bytes": 0, "max_chunk_extension_bytes_per_message": 4096},
    "timeouts": {"shutdown_grace_ms": 2500},
    "enforce": false, "limit_param": "page_size", "on_limit": "reject",
    "peers": [{"org": "partner-labs", "trust_level": "full",
               "cert_fingerprint": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
               "expires_at": "2027-04-13T00:00:00.5+02:00",
               "allowed_regions": ["eu-west"], "allowed_artifact_types": ["model", "dataset"],
               "entity_uri": "spiffe://partner-labs.example/nodes/primary",
               "endpoints": ["https://partner-labs.example:8443", "https://[2001:db8::1]:8443/"]}],
    "routes": [{"prefix": "/api/v1/credentials", "resource": "credentials", "sensitive": true}],
    "workers": 64)"));
  require_ok(r);
  const Config& c = *r.config;
  CHECK(c.tls.ticket_rotation_ms == 60000);
  CHECK(c.tls.session_tickets == false);
  CHECK(c.tls.crl == "/etc/fedproxy/crl.pem");
  CHECK(c.tls.crl_fail_open == true);
  CHECK(c.tls.watch_interval_ms == 250);
  CHECK(c.ingress.listen.host == "::");
  CHECK(c.ingress.listen.port == 0);
  CHECK(c.ingress.upstream.kind == Endpoint::Kind::unix_socket);
  CHECK(c.ingress.upstream.path == "/run/app.sock");
  CHECK(c.ingress.upstream_pool_max_idle == 0);
  CHECK(c.egress.allow_non_loopback == true);
  CHECK(c.egress.listen->host == "0.0.0.0");
  CHECK(c.limits.max_request_line_bytes == 4096);
  CHECK(c.limits.max_header_count == 50);
  CHECK(c.limits.max_conn_lifetime_ms == 600000);
  CHECK(c.limits.max_requests_per_conn == 1000);
  CHECK(c.limits.max_chunk_extension_bytes == 0);
  CHECK(c.limits.max_chunk_extension_bytes_per_message == 4096);
  CHECK(c.timeouts.shutdown_grace_ms == 2500);
  CHECK(c.enforce == false);
  CHECK(c.limit_param == "page_size");
  CHECK(c.on_limit == "reject");
  CHECK(c.workers == 64);
  REQUIRE(c.peers.size() == 1);
  const PeerConfig& p = c.peers[0];
  CHECK(p.trust_level == "full");
  CHECK(p.cert_fingerprint == "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  CHECK(p.expires_at == "2027-04-13T00:00:00.5+02:00");
  CHECK(p.allowed_regions == std::vector<std::string>{"eu-west"});
  CHECK(p.allowed_artifact_types == std::vector<std::string>{"model", "dataset"});
  CHECK(p.entity_uri == "spiffe://partner-labs.example/nodes/primary");
  REQUIRE(p.endpoints.has_value());
  CHECK(p.endpoints->size() == 2);
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].sensitive == true);
}

TEST_CASE("shutdown_grace_ms: top level, in timeouts, both equal, both different") {
  auto top = parse(with(R"("shutdown_grace_ms": 3000)"));
  require_ok(top);
  CHECK(top.config->timeouts.shutdown_grace_ms == 3000);

  auto both_same = parse(with(R"("shutdown_grace_ms": 0, "timeouts": {"shutdown_grace_ms": 0})"));
  require_ok(both_same);
  CHECK(both_same.config->timeouts.shutdown_grace_ms == 0);

  auto conflict =
      parse(with(R"("shutdown_grace_ms": 3000, "timeouts": {"shutdown_grace_ms": 4000})"));
  CHECK_FALSE(conflict.config.has_value());
  CHECK(find_problem(conflict, "shutdown_grace_ms", "conflicts with timeouts.shutdown_grace_ms"));
}

TEST_CASE("egress and admin may be null (disabled), as may their listen") {
  auto r = parse(with(R"("egress": null, "admin": null)"));
  require_ok(r);
  CHECK_FALSE(r.config->egress.listen.has_value());
  CHECK_FALSE(r.config->admin.listen.has_value());

  auto r2 = parse(with(R"("egress": {"listen": null}, "admin": {"listen": null})"));
  require_ok(r2);
  CHECK_FALSE(r2.config->egress.listen.has_value());
  CHECK_FALSE(r2.config->admin.listen.has_value());

  auto r3 = parse(with(R"("egress": {}, "admin": {"listen": "[::1]:9902"})"));
  require_ok(r3);
  REQUIRE(r3.config->egress.listen.has_value());
  CHECK(r3.config->egress.listen->port == 15001);
  CHECK(r3.config->admin.listen->host == "::1");
}

TEST_CASE("admin: token_file, named tokens, allowed_hosts, a unix socket") {
  auto r = parse(with(R"("admin": {"listen": "unix:/run/fedproxy/admin.sock", "token_file": "admin.token",
                                   "tokens": [{"name": "ops", "file": "/secrets/ops.token"},
                                              {"name": "ci.deploy_2", "file": "tokens/ci"}],
                                   "allowed_hosts": ["Admin.Example.Internal", "10.0.0.5:19901", "[FD00::5]"]})"));
  require_ok(r);
  const AdminConfig& a = r.config->admin;
  REQUIRE(a.listen.has_value());
  CHECK(a.listen->kind == Endpoint::Kind::unix_socket);
  CHECK(a.listen->path == "/run/fedproxy/admin.sock");
  REQUIRE(a.tokens.size() == 3);
  CHECK(a.tokens[0].name == "admin");  // admin.token_file speaks as "admin"
  CHECK(a.tokens[0].path == "/etc/fedproxy/admin.token");  // relative to the config file
  CHECK(a.tokens[0].where == "admin.token_file");
  CHECK(a.tokens[1].name == "ops");
  CHECK(a.tokens[1].path == "/secrets/ops.token");
  CHECK(a.tokens[1].where == "admin.tokens[0].file");
  CHECK(a.tokens[2].name == "ci.deploy_2");
  CHECK(a.tokens[2].path == "/etc/fedproxy/tokens/ci");
  REQUIRE(a.allowed_hosts.size() == 3);
  CHECK(a.allowed_hosts[0].to_string() == "admin.example.internal");
  CHECK(a.allowed_hosts[1].to_string() == "10.0.0.5:19901");
  CHECK(a.allowed_hosts[2].to_string() == "[fd00::5]");

  // Either key alone; a null token_file is none.
  auto only_tokens = parse(with(R"("admin": {"tokens": [{"name": "ops", "file": "ops.token"}]})"));
  require_ok(only_tokens);
  REQUIRE(only_tokens.config->admin.tokens.size() == 1);
  CHECK(only_tokens.config->admin.tokens[0].name == "ops");
  auto none = parse(with(R"("admin": {"token_file": null, "tokens": null, "allowed_hosts": null})"));
  require_ok(none);
  CHECK(none.config->admin.tokens.empty());
  CHECK(none.config->admin.allowed_hosts.empty());
  CHECK(none.config->admin.listen->text == "127.0.0.1:9901");
}

TEST_CASE("admin: every bad value is a problem naming its field") {
  struct Case {
    std::string extra;
    std::string where;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"("admin": {"token": "x"})", "admin.token", "did you mean"},
      {R"("admin": {"allowed_host": []})", "admin.allowed_host", "did you mean \"allowed_hosts\"?"},
      {R"("admin": {"token_file": ""})", "admin.token_file", "must not be empty"},
      {R"("admin": {"token_file": 5})", "admin.token_file", "must be a path string"},
      {R"("admin": {"tokens": "ops.token"})", "admin.tokens", "must be an array"},
      {R"("admin": {"tokens": []})", "admin.tokens", "at least one token"},
      {R"("admin": {"tokens": ["ops.token"]})", "admin.tokens[0]", "must be an object"},
      {R"("admin": {"tokens": [{"file": "a"}]})", "admin.tokens[0].name", "required"},
      {R"("admin": {"tokens": [{"name": "ops"}]})", "admin.tokens[0].file", "required"},
      {R"("admin": {"tokens": [{"name": "ops", "file": null}]})", "admin.tokens[0].file", "must be a path string"},
      {R"("admin": {"tokens": [{"name": "ops", "file": "a", "value": "x"}]})", "admin.tokens[0].value", "unknown key"},
      {R"("admin": {"tokens": [{"name": "Ops", "file": "a"}]})", "admin.tokens[0].name", "a-z, 0-9"},
      {R"("admin": {"tokens": [{"name": "", "file": "a"}]})", "admin.tokens[0].name", "1 to 63"},
      {R"("admin": {"tokens": [{"name": "-ops", "file": "a"}]})", "admin.tokens[0].name", "starting with"},
      {R"("admin": {"tokens": [{"name": "o p", "file": "a"}]})", "admin.tokens[0].name", "a-z, 0-9"},
      {R"("admin": {"tokens": [{"name": 3, "file": "a"}]})", "admin.tokens[0].name", "must be a string"},
      {R"("admin": {"tokens": [{"name": "ops", "file": "a"}, {"name": "ops", "file": "b"}]})",
       "admin.tokens[1].name", "duplicate token name \"ops\" (also admin.tokens[0].name)"},
      {R"("admin": {"token_file": "a", "tokens": [{"name": "admin", "file": "b"}]})", "admin.tokens[0].name",
       "duplicate token name \"admin\" (also admin.token_file)"},
      {R"("admin": {"allowed_hosts": "localhost"})", "admin.allowed_hosts", "must be an array"},
      {R"("admin": {"allowed_hosts": [""]})", "admin.allowed_hosts[0]", "must not be empty"},
      {R"("admin": {"allowed_hosts": ["http://admin.example"]})", "admin.allowed_hosts[0]", "host name or IP address"},
      {R"("admin": {"allowed_hosts": ["admin.example/"]})", "admin.allowed_hosts[0]", "invalid host"},
      {R"("admin": {"allowed_hosts": ["admin.example:0"]})", "admin.allowed_hosts[0]", "invalid port"},
      {R"("admin": {"allowed_hosts": ["admin.example:"]})", "admin.allowed_hosts[0]", "empty port"},
      {R"("admin": {"allowed_hosts": ["*.example"]})", "admin.allowed_hosts[0]", "invalid host"},
      {R"("admin": {"allowed_hosts": ["admin.example."]})", "admin.allowed_hosts[0]", "invalid host"},
      {R"("admin": {"allowed_hosts": ["fd00::5"]})", "admin.allowed_hosts[0]", "invalid"},
      {R"("admin": {"allowed_hosts": ["[fd00::5"]})", "admin.allowed_hosts[0]", "unterminated"},
      {R"("admin": {"allowed_hosts": ["ok.example", 5]})", "admin.allowed_hosts[1]", "must be a string"},
      {R"("admin": {"listen": "unix:admin.sock"})", "admin.listen", "must be absolute"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.extra);
    auto r = parse(with(c.extra));
    INFO("problems:\n" << dump(r));
    CHECK_FALSE(r.config.has_value());
    CHECK(find_problem(r, c.where, c.message) != nullptr);
  }
}

TEST_CASE("workers: integer or \"auto\"") {
  auto r = parse(with(R"("workers": "auto")"));
  require_ok(r);
  unsigned hc = std::thread::hardware_concurrency();
  unsigned expected = hc == 0 ? 1 : (hc > 64 ? 64 : hc);
  CHECK(r.config->workers == expected);
  CHECK(r.config->workers >= 1);

  auto r2 = parse(with(R"("workers": 8)"));
  require_ok(r2);
  CHECK(r2.config->workers == 8);
}

TEST_CASE("unknown keys are an error at every level, with a suggestion when close") {
  struct Case {
    std::string json;
    std::string where;
    std::string message;  // fragment expected in the message
  };
  const std::vector<Case> cases = {
      {with(R"("worker": 2)"), "worker", "did you mean \"workers\"?"},
      {with(R"("grant": [])"), "grant", "did you mean \"grants\"?"},
      {R"({"nod": {}, "node": {"org": "acme-corp", "entity_uri": "x:y"}})", "nod",
       "did you mean \"node\"?"},
      {R"({"node": {"org": "acme-corp", "entity_uri": "x:y", "entity-uri": "x:y"}})",
       "node.entity-uri", "did you mean \"entity_uri\"?"},
      {with(R"("tls": {"crt": "a"})"), "tls.crt", "did you mean \"cert\"?"},
      {with(R"("tls": {"ca_bundel": "a"})"), "tls.ca_bundel", "did you mean \"ca_bundle\"?"},
      {with(R"("tls": {"cretificate": "a"})"), "tls.cretificate", "unknown key (known keys: cert, key"},
      {with(R"("ingress": {"upstrem": "127.0.0.1:1"})"), "ingress.upstrem",
       "did you mean \"upstream\"?"},
      {with(R"("egress": {"listne": "127.0.0.1:1"})"), "egress.listne", "did you mean \"listen\"?"},
      {with(R"("admin": {"lsten": "127.0.0.1:1"})"), "admin.lsten", "did you mean \"listen\"?"},
      {with(R"("peers": [{"org": "a1a"}, {"org": "b1b", "trust": "full"}])"), "peers[1].trust",
       "unknown key"},
      {with(R"("peers": [{"org": "a1a", "expire_at": null}])"), "peers[0].expire_at",
       "did you mean \"expires_at\"?"},
      {with(R"("routes": [{"prefix": "/a", "resource": "a", "sensitve": true}])"),
       "routes[0].sensitve", "did you mean \"sensitive\"?"},
      {with(R"("audit": {"pth": "a"})"), "audit.pth", "did you mean \"path\"?"},
      {with(R"("limits": {"max_conections": 5})"), "limits.max_conections",
       "did you mean \"max_connections\"?"},
      {with(R"("timeouts": {"idle": 5})"), "timeouts.idle", "unknown key"},
      {with(R"("timeouts": {"header_ms": 5, "headers_ms": 5})"), "timeouts.headers_ms",
       "did you mean \"header_ms\"?"},
      {with(R"("tls": {"a.b": 1})"), "tls[\"a.b\"]", "unknown key"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    auto r = parse(c.json);
    INFO("problems:\n" << dump(r));
    CHECK_FALSE(r.config.has_value());
    CHECK(find_problem(r, c.where, c.message) != nullptr);
  }
}

TEST_CASE("no suggestion for a far-off key; ignored keys only at top level") {
  auto r = parse(with(R"("tls": {"zzzzzz": 1})"));
  const ConfigProblem* p = find_problem(r, "tls.zzzzzz", "unknown key");
  REQUIRE(p);
  CHECK(p->message.find("did you mean") == std::string::npos);

  auto nested = parse(with(R"("tls": {"_comment": "x"})"));
  CHECK(find_problem(nested, "tls._comment", "unknown key"));
  auto top = parse(with(R"("_comment": {"a": 1}, "$schema": "x")"));
  require_ok(top);
}

TEST_CASE("grant fields are typed here but their problems are policy's, only shape and id are the config's") {
  auto r = parse(with(R"("grants": [{"id": "g1", "anything": {"deep": [1,2]}}, {"id": "g2"}])"));
  require_ok(r);
  REQUIRE(r.config->grants.size() == 2);
  CHECK(r.config->grants[1].where == "grants[1]");
  CHECK(r.config->grants[0].id == "g1");
  // compile_policy reports these (tests/unit/policy/policy_compile_test.cpp).
  const auto& gp = r.config->grant_problems;
  CHECK(std::any_of(gp.begin(), gp.end(), [](const ConfigProblem& p) {
    return p.where == "grants[0].anything" && p.message == "grant \"g1\": unknown key \"anything\"";
  }));
  CHECK(std::any_of(gp.begin(), gp.end(), [](const ConfigProblem& p) { return p.where == "grants[1].peer"; }));

  auto bad = parse(with(R"("grants": [{"id": "g1"}, "g2", {"peer": "x"}, {"id": 5}, {"id": ""}])"));
  CHECK_FALSE(bad.config.has_value());
  CHECK(find_problem(bad, "grants[1]", "must be an object, got a string"));
  CHECK(find_problem(bad, "grants[2].id", "required"));
  CHECK(find_problem(bad, "grants[3].id", "must be a string"));
  CHECK(find_problem(bad, "grants[4].id", "must not be empty"));
  CHECK(bad.problems.size() == 4);
}

TEST_CASE("all problems are reported, not just the first") {
  auto r = parse(R"({
    "node": {"org": "Bad_Org", "entity_uri": ""},
    "tls": {"cert": "c.pem", "crl_fail_open": "yes", "watch_interval_ms": -1},
    "ingress": {"listen": "example.com:443"},
    "egress": {"listen": "0.0.0.0:15001"},
    "workers": 0,
    "peers": [{"org": "p1p", "trust_level": "verifed"}, {"org": "p1p"}],
    "routes": [{"prefix": "api", "resource": "Tasks"}],
    "limits": {"max_header_bytes": 10},
    "timeouts": {"idle_ms": 0},
    "on_limit": "drop",
    "bogus": 1
  })");
  INFO("problems:\n" << dump(r));
  CHECK_FALSE(r.config.has_value());
  const std::vector<std::string> wheres = {
      "node.org",          "node.entity_uri",        "tls.crl_fail_open", "tls.watch_interval_ms",
      "tls.key",           "tls.ca_bundle",          "ingress.listen",    "egress.listen",
      "workers",           "peers[0].trust_level",   "peers[1].org",      "routes[0].prefix",
      "routes[0].resource", "limits.max_header_bytes", "timeouts.idle_ms", "on_limit",
      "bogus"};
  for (const auto& w : wheres) {
    CAPTURE(w);
    CHECK(find_problem(r, w) != nullptr);
  }
  CHECK(r.problems.size() == wheres.size());
  CHECK(find_problem(r, "peers[0].trust_level", "did you mean \"verified\"?"));
}

TEST_CASE("validation rules") {
  struct Case {
    std::string extra;  // top-level members added to a valid node
    std::string where;
    std::string message;
  };
  const std::vector<Case> cases = {
      // types
      {R"("tls": "x")", "tls", "must be an object, got a string"},
      {R"("tls": {"cert": 5})", "tls.cert", "must be a path string or null, got an integer"},
      {R"("tls": {"cert": ""})", "tls.cert", "must not be empty"},
      {R"("tls": {"crl_fail_open": 1})", "tls.crl_fail_open", "must be true or false"},
      {R"("tls": {"session_tickets": "true"})", "tls.session_tickets", "must be true or false"},
      {R"("tls": {"watch_interval_ms": 99})", "tls.watch_interval_ms", "between 100 and"},
      {R"("tls": {"watch_interval_ms": 5000.5})", "tls.watch_interval_ms", "(got 5000.5)"},
      {R"("tls": {"watch_interval_ms": "5000"})", "tls.watch_interval_ms", "got a string"},
      {R"("tls": {"ticket_rotation_ms": 604800001})", "tls.ticket_rotation_ms", "between 1000 and 604800000"},
      {R"("ingress": null)", "ingress", "must be an object, got null"},
      {R"("ingress": {"upstream_pool_max_idle": -1})", "ingress.upstream_pool_max_idle", "(got -1)"},
      {R"("egress": 5)", "egress", "must be an object"},
      {R"("egress": {"allow_non_loopback": null})", "egress.allow_non_loopback", "must be true or false"},
      {R"("egress": {"dns_ttl_ms": -1})", "egress.dns_ttl_ms", "between 0 and"},
      {R"("egress": {"dns_negative_ttl_ms": "5s"})", "egress.dns_negative_ttl_ms", "integer"},
      {R"("manifests_dir": 3)", "manifests_dir", "must be a path string"},
      {R"("manifests_dir": "")", "manifests_dir", "must not be empty"},
      {R"("peers": {})", "peers", "must be an array, got an object"},
      {R"("peers": [1])", "peers[0]", "must be an object, got an integer"},
      {R"("routes": "x")", "routes", "must be an array"},
      {R"("grants": {})", "grants", "must be an array"},
      {R"("audit": [])", "audit", "must be an object, got an array"},
      {R"("audit": {"path": ""})", "audit.path", "must not be empty"},
      {R"("audit": {"path": "a", "on_failure": "ignore"})", "audit.on_failure",
       "must be one of reject, continue (got \"ignore\")"},
      {R"("audit": {"on_failure": "contine"})", "audit.on_failure", "did you mean \"continue\"?"},
      {R"("audit": {"on_failure": false})", "audit.on_failure", "must be a string"},
      {R"("limits": null)", "limits", "must be an object"},
      {R"("timeouts": 1)", "timeouts", "must be an object"},
      {R"("enforce": "false")", "enforce", "must be true or false"},
      {R"("limit_param": "")", "limit_param", "query parameter name"},
      {R"("limit_param": "a b")", "limit_param", "query parameter name"},
      {R"("on_limit": "rewite")", "on_limit", "did you mean \"rewrite\"?"},
      {R"("on_limit": "drop")", "on_limit", "must be one of rewrite, reject"},
      // workers
      {R"("workers": 0)", "workers", "between 1 and 64"},
      {R"("workers": 65)", "workers", "between 1 and 64"},
      {R"("workers": "many")", "workers", "or \"auto\""},
      {R"("workers": 1.5)", "workers", "or \"auto\""},
      // limits
      {R"("limits": {"max_header_bytes": 1023})", "limits.max_header_bytes", "between 1024 and 1048576"},
      {R"("limits": {"max_header_bytes": 1048577})", "limits.max_header_bytes", "(got 1048577)"},
      {R"("limits": {"max_connections": 0})", "limits.max_connections", "between 1 and"},
      {R"("limits": {"max_header_count": 0})", "limits.max_header_count", "between 1 and"},
      {R"("limits": {"max_request_line_bytes": 10})", "limits.max_request_line_bytes", "between 256"},
      {R"("limits": {"max_conn_lifetime_ms": -5})", "limits.max_conn_lifetime_ms", "(got -5)"},
      {R"("limits": {"max_requests_per_conn": 1e3})", "limits.max_requests_per_conn", "must be an integer"},
      // timeouts
      {R"("timeouts": {"handshake_ms": 0})", "timeouts.handshake_ms", "between 1 and 86400000"},
      {R"("timeouts": {"header_ms": 86400001})", "timeouts.header_ms", "between 1 and 86400000"},
      {R"("timeouts": {"upstream_connect_ms": 0})", "timeouts.upstream_connect_ms", "between 1"},
      {R"("timeouts": {"upstream_response_ms": 99999999999999})", "timeouts.upstream_response_ms", "between 1"},
      {R"("timeouts": {"shutdown_grace_ms": -1})", "timeouts.shutdown_grace_ms", "between 0"},
      {R"("shutdown_grace_ms": "10s")", "shutdown_grace_ms", "got a string"},
      // tls pairing
      {R"("tls": {"cert": "a.crt", "ca_bundle": "ca.crt"})", "tls.key", "required when tls.cert is set"},
      {R"("tls": {"key": "a.key", "ca_bundle": "ca.crt"})", "tls.cert", "required when tls.key is set"},
      {R"("tls": {"cert": "a.crt", "key": "a.key"})", "tls.ca_bundle", "required when tls.cert is set"},
      {R"("tls": {"cert": "a.crt", "key": "a.key", "ca_bundle": null})", "tls.ca_bundle", "required"},
      // endpoints
      {R"("ingress": {"listen": "partner.example:8443"})", "ingress.listen", "must be an IP address or \"localhost\""},
      {R"("ingress": {"listen": "unix:/run/x.sock"})", "ingress.listen", "unix sockets are supported for ingress.upstream and admin.listen only"},
      {R"("egress": {"listen": "unix:/run/x.sock"})", "egress.listen", "unix sockets are supported"},
      {R"("ingress": {"upstream": "127.0.0.1:0"})", "ingress.upstream", "port 0"},
      {R"("ingress": {"upstream": "unix:relative.sock"})", "ingress.upstream", "must be absolute"},
      {R"("ingress": {"upstream": 8080})", "ingress.upstream", "must be a string"},
      {R"("ingress": {"listen": "0.0.0.0:70000"})", "ingress.listen", "invalid port"},
      {R"("egress": {"listen": "0.0.0.0:15001"})", "egress.listen", "must be a loopback address"},
      {R"("egress": {"listen": "[::]:15001"})", "egress.listen", "allow_non_loopback"},
      {R"("egress": {"listen": "10.1.2.3:15001", "allow_non_loopback": false})", "egress.listen", "loopback"},
      {R"("admin": {"listen": "::1:9901"})", "admin.listen", "brackets"},
      // peers
      {R"("peers": [{"trust_level": "full"}])", "peers[0].org", "required"},
      {R"("peers": [{"org": "acme-corp"}])", "peers[0].org", "this node's own org"},
      {R"("peers": [{"org": "x1x"}, {"org": "y1y"}, {"org": "x1x"}])", "peers[2].org", "duplicate peer \"x1x\" (also peers[0])"},
      {R"("peers": [{"org": "p1p", "trust_level": "trusted"}])", "peers[0].trust_level", "none, verified, full"},
      {R"("peers": [{"org": "p1p", "trust_level": null}])", "peers[0].trust_level", "must be a string"},
      {R"("peers": [{"org": "p1p", "cert_fingerprint": "abc"}])", "peers[0].cert_fingerprint", "64 lowercase hex"},
      {R"("peers": [{"org": "p1p", "cert_fingerprint": "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"}])", "peers[0].cert_fingerprint", "use lowercase"},
      {R"("peers": [{"org": "p1p", "cert_fingerprint": "01:23"}])", "peers[0].cert_fingerprint", "':' separators"},
      {R"("peers": [{"org": "p1p", "cert_fingerprint": "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}])", "peers[0].cert_fingerprint", "64 lowercase hex"},
      {R"("peers": [{"org": "p1p", "allowed_regions": "eu"}])", "peers[0].allowed_regions", "must be an array of strings or null"},
      {R"("peers": [{"org": "p1p", "allowed_regions": ["eu", 3]}])", "peers[0].allowed_regions[1]", "must be a string"},
      {R"("peers": [{"org": "p1p", "allowed_artifact_types": [""]}])", "peers[0].allowed_artifact_types[0]", "must not be empty"},
      {R"("peers": [{"org": "p1p", "entity_uri": "no-scheme"}])", "peers[0].entity_uri", "absolute URI with a scheme"},
      {R"("peers": [{"org": "p1p", "ca_bundle": ""}])", "peers[0].ca_bundle", "must not be empty"},
      {R"("peers": [{"org": "p1p", "ca_bundle": ["a.pem"]}])", "peers[0].ca_bundle", "path string or null"},
      {R"("peers": [{"org": "p1p", "ca_bundel": "a.pem"}])", "peers[0].ca_bundel", "did you mean \"ca_bundle\""},
      {R"("peers": [{"org": "p1p", "trust_domain": "Partner.example"}])", "peers[0].trust_domain", "SPIFFE trust domain"},
      {R"("peers": [{"org": "p1p", "trust_domain": ""}])", "peers[0].trust_domain", "SPIFFE trust domain"},
      {R"("peers": [{"org": "p1p", "trust_domain": "a/b"}])", "peers[0].trust_domain", "SPIFFE trust domain"},
      {R"("peers": [{"org": "p1p", "entity_uri": "spiffe://a b"}])", "peers[0].entity_uri", "whitespace"},
      {R"("peers": [{"org": "p1p", "endpoints": ["partner.example:8443"]}])", "peers[0].endpoints[0]", "https:// URL"},
      {R"("peers": [{"org": "p1p", "endpoints": ["https://partner.example:0"]}])", "peers[0].endpoints[0]", "invalid port"},
      {R"("peers": [{"org": "p1p", "endpoints": ["https://partner.example/api"]}])", "peers[0].endpoints[0]", "bare origin"},
      {R"("peers": [{"org": "p1p", "endpoints": ["https://bad_host:1"]}])", "peers[0].endpoints[0]", "invalid host"},
      {R"("peers": [{"org": "p1p", "endpoints": ["https://[zz::1]:1"]}])", "peers[0].endpoints[0]", "invalid IPv6"},
      {R"("peers": [{"org": "p1p", "endpoints": "https://a:1"}])", "peers[0].endpoints", "must be an array"},
      // routes
      {R"("routes": [{"resource": "a"}])", "routes[0].prefix", "required"},
      {R"("routes": [{"prefix": "/a"}])", "routes[0].resource", "required"},
      {R"("routes": [{"prefix": "api/v1", "resource": "a"}])", "routes[0].prefix", "must start with \"/\""},
      {R"("routes": [{"prefix": "", "resource": "a"}])", "routes[0].prefix", "must start with \"/\""},
      {R"("routes": [{"prefix": "/a//b", "resource": "a"}])", "routes[0].prefix", "empty path segment"},
      {R"("routes": [{"prefix": "/a/../b", "resource": "a"}])", "routes[0].prefix", "dot segment"},
      {R"("routes": [{"prefix": "/a/%2e%2E/b", "resource": "a"}])", "routes[0].prefix", "dot segment"},
      {R"("routes": [{"prefix": "/a?x=1", "resource": "a"}])", "routes[0].prefix", "'?'"},
      {R"("routes": [{"prefix": "/a/%zz", "resource": "a"}])", "routes[0].prefix", "malformed %-escape"},
      {R"("routes": [{"prefix": "/a%2Fb", "resource": "a"}])", "routes[0].prefix", "encoded \"/\""},
      {R"("routes": [{"prefix": "/a;x", "resource": "a"}])", "routes[0].prefix", "\";\""},
      {R"("routes": [{"prefix": "/a#x", "resource": "a"}])", "routes[0].prefix", "\"#\""},
      {R"("routes": [{"prefix": "/a/%c0%ae", "resource": "a"}])", "routes[0].prefix", "not UTF-8"},
      {R"("routes": [{"prefix": "http://acme/a", "resource": "a"}])", "routes[0].prefix", "must start with \"/\""},
      {R"("routes": [{"prefix": "/a", "resource": ""}])", "routes[0].resource", "a-z, 0-9"},
      {R"("routes": [{"prefix": "/a", "resource": "Tasks"}])", "routes[0].resource", "a-z, 0-9"},
      {R"("routes": [{"prefix": "/a", "resource": "a.b"}])", "routes[0].resource", "a-z, 0-9"},
      {R"("routes": [{"prefix": "/a", "resource": "a", "sensitive": "yes"}])", "routes[0].sensitive", "true or false"},
      {R"("routes": [{"prefix": "/a", "resource": "a"}, {"prefix": "/a", "resource": "b"}])", "routes[1].prefix", "duplicate prefix \"/a\" (also routes[0])"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.extra);
    auto r = parse(with(c.extra));
    INFO("problems:\n" << dump(r));
    CHECK_FALSE(r.config.has_value());
    CHECK(find_problem(r, c.where, c.message) != nullptr);
  }
}

TEST_CASE("values at the edges of the ranges are accepted") {
  const std::vector<std::string> ok = {
      R"("limits": {"max_header_bytes": 1024, "max_connections": 1})",
      R"("limits": {"max_header_bytes": 1048576})",
      R"("timeouts": {"handshake_ms": 1, "idle_ms": 86400000})",
      R"("workers": 1)",
      R"("workers": 64)",
      R"("tls": {"watch_interval_ms": 100})",
      R"("routes": [{"prefix": "/", "resource": "root_all"}, {"prefix": "/api/", "resource": "a-b_c9"}])",
      R"("peers": [{"org": "p1p", "trust_level": "none"}, {"org": "p2p", "cert_fingerprint": null}])",
      R"("peers": [{"org": "p1p", "endpoints": ["http://127.0.0.1:8443", "https://a.b"], "entity_uri": "urn:x"}])",
      R"("tls": null, "audit": null, "manifests_dir": null)",
      R"("audit": {"path": null})",
      R"("egress": {"listen": "localhost:15001"})",
      R"("egress": {"listen": "127.8.9.10:15001"})",
  };
  for (const auto& extra : ok) {
    CAPTURE(extra);
    auto r = parse(with(extra));
    INFO("problems:\n" << dump(r));
    CHECK(r.config.has_value());
    CHECK(r.problems.empty());
  }
}

TEST_CASE("node section is required, with org and entity_uri") {
  auto none = parse("{}");
  CHECK(find_problem(none, "node", "required"));
  auto empty = parse(R"({"node": {}})");
  CHECK(find_problem(empty, "node.org", "required"));
  CHECK(find_problem(empty, "node.entity_uri", "required"));
  auto types = parse(R"({"node": {"org": 1, "entity_uri": ["x"]}})");
  CHECK(find_problem(types, "node.org", "must be a string"));
  CHECK(find_problem(types, "node.entity_uri", "must be a string"));
  auto uri = parse(R"({"node": {"org": "acme", "entity_uri": "//acme/nodes"}})");
  CHECK(find_problem(uri, "node.entity_uri", "scheme"));
  auto colon_only = parse(R"({"node": {"org": "acme", "entity_uri": "spiffe:"}})");
  CHECK(find_problem(colon_only, "node.entity_uri", "nothing after the scheme"));
  auto root = parse("[1]");
  CHECK(find_problem(root, "(root)", "must be a JSON object, got an array"));
}

TEST_CASE("org slugs: node.org and peers[].org follow the same rule") {
  struct Case {
    const char* slug;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"a", true},
      {"7", true},
      {"abc", true},
      {"partner-labs", true},
      {"a-b", true},
      {"a1-b2-c3", true},
      {"ab", false},  // the SPEC regex admits 1 or 3..63 characters
      {"", false},
      {"-abc", false},
      {"abc-", false},
      {"a--b", false},
      {"Acme", false},
      {"acme_corp", false},
      {"acme.corp", false},
      {"acme corp", false},
      {"local", false},
      {"user", false},
      {"marketplace", false},
      {"system", false},
      {"admin", false},
      {"root", false},
      {"roots", true},
  };
  std::string s63(63, 'a'), s64(64, 'a');
  for (const auto& c : cases) {
    CAPTURE(c.slug);
    auto node = parse(std::string(R"({"node": {"org": ")") + c.slug +
                      R"(", "entity_uri": "spiffe://x/y"}})");
    CHECK(node.config.has_value() == c.valid);
    if (!c.valid) CHECK(find_problem(node, "node.org", "slug"));
    auto peer = parse(with(std::string(R"("peers": [{"org": ")") + c.slug + R"("}])"));
    CHECK(peer.config.has_value() == c.valid);
    if (!c.valid) CHECK(find_problem(peer, "peers[0].org", "slug"));
  }
  CHECK(parse(R"({"node": {"org": ")" + s63 + R"(", "entity_uri": "a:b"}})").config.has_value());
  CHECK(find_problem(parse(R"({"node": {"org": ")" + s64 + R"(", "entity_uri": "a:b"}})"),
                     "node.org", "3 to 63"));
  CHECK(find_problem(parse(R"({"node": {"org": "root", "entity_uri": "a:b"}})"), "node.org",
                     "reserved"));
  CHECK(find_problem(parse(R"({"node": {"org": "a--b", "entity_uri": "a:b"}})"), "node.org",
                     "\"--\""));
}

TEST_CASE("expires_at must be RFC 3339") {
  struct Case {
    const char* ts;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"2027-04-13T00:00:00Z", true},
      {"2027-04-13T23:59:59.123456Z", true},
      {"2027-04-13T00:00:00+02:00", true},
      {"2027-04-13T00:00:00-11:30", true},
      {"2028-02-29T00:00:00Z", true},    // leap year
      {"2000-02-29T00:00:00Z", true},    // leap year (400)
      {"2016-12-31T23:59:60Z", true},    // leap second
      {"2027-02-29T00:00:00Z", false},   // not a leap year
      {"1900-02-29T00:00:00Z", false},   // not a leap year (100)
      {"2027-04-31T00:00:00Z", false},
      {"2027-13-01T00:00:00Z", false},
      {"2027-00-01T00:00:00Z", false},
      {"2027-04-00T00:00:00Z", false},
      {"2027-04-13T24:00:00Z", false},
      {"2027-04-13T00:60:00Z", false},
      {"2027-04-13T00:00:61Z", false},
      {"2027-04-13", false},
      {"2027-04-13T00:00:00", false},    // no offset
      {"2027-04-13 00:00:00Z", false},
      {"2027-04-13t00:00:00z", false},
      {"2027-04-13T00:00:00.Z", false},
      {"2027-04-13T00:00:00+0200", false},
      {"2027-04-13T00:00:00+24:00", false},
      {"2027-04-13T00:00:00Zjunk", false},
      {"27-04-13T00:00:00Z", false},
      {"", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.ts);
    auto r = parse(with(std::string(R"("peers": [{"org": "p1p", "expires_at": ")") + c.ts +
                        R"("}])"));
    CHECK(r.config.has_value() == c.valid);
    if (c.valid && r.config) {
      CHECK(r.config->peers[0].expires_at == std::string(c.ts));
    } else {
      CHECK(find_problem(r, "peers[0].expires_at", "RFC 3339"));
    }
  }
}

TEST_CASE("malformed JSON is one problem with a line and column") {
  auto r = parse("{\n  \"node\": {\"org\": \"a\",\n    \"entity_uri\": x}\n}");
  REQUIRE(r.problems.size() == 1);
  CHECK_FALSE(r.config.has_value());
  CHECK(r.problems[0].where == "line 3, column 19");
  CHECK(r.problems[0].message == "invalid JSON: unexpected character 'x'");

  auto trunc = parse("{\"node\": {");
  REQUIRE(trunc.problems.size() == 1);
  CHECK(trunc.problems[0].where == "line 1, column 11");
  CHECK(trunc.problems[0].message.find("unexpected end of input") != std::string::npos);

  auto trailing = parse(with("") + "\n x");
  REQUIRE(trailing.problems.size() == 1);
  CHECK(trailing.problems[0].where == "line 2, column 2");
  CHECK(trailing.problems[0].message.find("after the end") != std::string::npos);

  auto empty = parse("");
  REQUIRE(empty.problems.size() == 1);
  CHECK(empty.problems[0].where == "line 1, column 1");

  auto huge = parse(with(R"("workers": 1e999, "limits": {"max_connections": -1e999})"));
  REQUIRE(huge.problems.size() == 2);
  CHECK(find_problem(huge, "workers", "number out of range"));
  CHECK(find_problem(huge, "limits.max_connections", "number out of range"));

  std::string deep(200, '[');
  auto nested = parse(with(R"("_comment": )" + deep));
  REQUIRE(nested.problems.size() == 1);
  CHECK(nested.problems[0].message.find("nested too deeply") != std::string::npos);

  auto ctrl = parse(std::string("{\x01}"));
  REQUIRE(ctrl.problems.size() == 1);
  CHECK(ctrl.problems[0].message.find("0x01") != std::string::npos);
}

TEST_CASE("duplicate keys are problems at their location") {
  auto r = parse(R"({"node": {"org": "acme-corp", "org": "other", "entity_uri": "a:b"},
                     "tls": {"cert": "a", "cert": "b"}, "workers": 1, "workers": 2})");
  INFO("problems:\n" << dump(r));
  CHECK_FALSE(r.config.has_value());
  CHECK(find_problem(r, "node.org", "duplicate key"));
  CHECK(find_problem(r, "tls.cert", "duplicate key"));
  CHECK(find_problem(r, "workers", "duplicate key"));
  auto arr = parse(with(R"("peers": [{"org": "p1p"}, {"org": "p2p", "org": "p3p"}])"));
  CHECK(find_problem(arr, "peers[1].org", "duplicate key"));
}

TEST_CASE("a UTF-8 byte order mark is tolerated") {
  auto r = parse("\xEF\xBB\xBF" + with(""));
  require_ok(r);
}

TEST_CASE("NUL bytes in strings are refused") {
  auto r = parse(with(R"("tls": {"cert": "a\u0000b"})"));
  CHECK(find_problem(r, "tls.cert", "NUL"));
}

TEST_CASE("audit.on_failure: reject by default, continue when asked") {
  auto r = parse_config(with(R"("audit": {"path": "/var/log/a.jsonl", "on_failure": "continue"})"), "/srv");
  require_ok(r);
  CHECK(r.config->audit.on_failure == AuditConfig::OnFailure::continue_);
  CHECK(std::string(to_string(r.config->audit.on_failure)) == "continue");
  auto d = parse_config(with(R"("audit": {"path": "/var/log/a.jsonl"})"), "/srv");
  require_ok(d);
  CHECK(d.config->audit.on_failure == AuditConfig::OnFailure::reject);
  CHECK(std::string(to_string(d.config->audit.on_failure)) == "reject");
}

TEST_CASE("relative paths resolve against base_dir; env overrides against the cwd") {
  const char* tls = R"("tls": {"cert": "tls/../tls/node.crt", "key": "/abs/node.key",
                               "ca_bundle": "./ca.crt", "crl": "crl/ca.crl"},
                       "manifests_dir": "peers/", "audit": {"path": "logs/audit.jsonl"})";
  auto r = parse_config(with(tls), "/srv/fp/conf");
  require_ok(r);
  CHECK(r.config->dir == "/srv/fp/conf");
  CHECK(r.config->tls.cert == "/srv/fp/conf/tls/node.crt");
  CHECK(r.config->tls.key == "/abs/node.key");
  CHECK(r.config->tls.ca_bundle == "/srv/fp/conf/ca.crt");
  CHECK(r.config->tls.crl == "/srv/fp/conf/crl/ca.crl");
  CHECK(r.config->manifests_dir == "/srv/fp/conf/peers");
  CHECK(r.config->audit.path == "/srv/fp/conf/logs/audit.jsonl");

  // A relative base_dir is made absolute against the cwd.
  std::string cwd = fs::current_path().string();
  auto rel = parse_config(with(tls), "conf");
  require_ok(rel);
  CHECK(rel.config->dir == cwd + "/conf");
  CHECK(rel.config->tls.cert == cwd + "/conf/tls/node.crt");

  EnvOverrides env;
  env.tls_cert = "/run/secrets/tls.crt";
  env.tls_key = "secrets/tls.key";
  env.tls_ca_bundle = "../ca.crt";
  auto o = parse_config(with(tls), "/srv/fp/conf", env);
  require_ok(o);
  CHECK(o.config->tls.cert == "/run/secrets/tls.crt");
  CHECK(o.config->tls.key == cwd + "/secrets/tls.key");
  CHECK(o.config->tls.ca_bundle == (fs::path(cwd).parent_path() / "ca.crt").string());
  CHECK(o.config->tls.crl == "/srv/fp/conf/crl/ca.crl");  // no override for the CRL
}

TEST_CASE("env overrides alone can configure TLS, and are checked for pairing") {
  EnvOverrides env;
  env.tls_cert = "/c.crt";
  env.tls_key = "/c.key";
  env.tls_ca_bundle = "/ca.crt";
  auto r = parse_config(with(""), "/etc", env);
  require_ok(r);
  CHECK(r.config->tls.cert == "/c.crt");
  CHECK(r.config->tls.key == "/c.key");
  CHECK(r.config->tls.ca_bundle == "/ca.crt");

  EnvOverrides only_cert;
  only_cert.tls_cert = "/c.crt";
  auto bad = parse_config(with(""), "/etc", only_cert);
  CHECK(find_problem(bad, "tls.key", "set by FEDPROXY_TLS_CERT_PATH"));
  CHECK(find_problem(bad, "tls.ca_bundle", "required"));

  EnvOverrides empty;
  empty.tls_key = "";
  auto e = parse_config(with(""), "/etc", empty);
  CHECK(find_problem(e, "FEDPROXY_TLS_KEY_PATH", "non-empty"));
}

TEST_CASE("EnvOverrides::from_environment reads the three variables") {
  ::setenv("FEDPROXY_TLS_CERT_PATH", "/e/cert.pem", 1);
  ::setenv("FEDPROXY_TLS_KEY_PATH", "", 1);  // empty = unset
  ::unsetenv("FEDPROXY_TLS_CA_BUNDLE");
  auto env = EnvOverrides::from_environment();
  CHECK(env.tls_cert == std::optional<std::string>("/e/cert.pem"));
  CHECK_FALSE(env.tls_key.has_value());
  CHECK_FALSE(env.tls_ca_bundle.has_value());
  ::setenv("FEDPROXY_TLS_CA_BUNDLE", "ca.pem", 1);
  CHECK(EnvOverrides::from_environment().tls_ca_bundle == std::optional<std::string>("ca.pem"));
  ::unsetenv("FEDPROXY_TLS_CERT_PATH");
  ::unsetenv("FEDPROXY_TLS_KEY_PATH");
  ::unsetenv("FEDPROXY_TLS_CA_BUNDLE");
  CHECK_FALSE(EnvOverrides::from_environment().tls_cert.has_value());
}

TEST_CASE("load_config_file: path, dir and read errors") {
  char tmpl[] = "/tmp/fedproxy-config-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  fs::path dir(tmpl);
  fs::create_directories(dir / "conf");
  {
    std::ofstream f(dir / "conf" / "fedproxy.json");
    f << with(R"("tls": {"cert": "node.crt", "key": "node.key", "ca_bundle": "ca.crt"})");
  }
  auto r = load_config_file((dir / "conf" / "." / "fedproxy.json").string());
  require_ok(r);
  CHECK(r.config->path == (dir / "conf" / "fedproxy.json").string());
  CHECK(r.config->dir == (dir / "conf").string());
  CHECK(r.config->tls.cert == (dir / "conf" / "node.crt").string());

  // Symlinks are not resolved: relative paths follow the name the user gave
  // (a Kubernetes ..data swap must not pin a stale directory).
  fs::create_directories(dir / "link");
  fs::create_symlink(dir / "conf" / "fedproxy.json", dir / "link" / "fedproxy.json");
  auto l = load_config_file((dir / "link" / "fedproxy.json").string());
  require_ok(l);
  CHECK(l.config->dir == (dir / "link").string());
  CHECK(l.config->tls.cert == (dir / "link" / "node.crt").string());

  std::string missing = (dir / "nope.json").string();
  auto m = load_config_file(missing);
  REQUIRE(m.problems.size() == 1);
  CHECK_FALSE(m.config.has_value());
  CHECK(m.problems[0].where == missing);
  CHECK(m.problems[0].message == "cannot read: No such file or directory");

  auto d = load_config_file((dir / "conf").string());
  REQUIRE(d.problems.size() == 1);
  CHECK(d.problems[0].message == "cannot read: Is a directory");

  {
    std::ofstream f(dir / "bad.json");
    f << "{\"node\": }";
  }
  auto b = load_config_file((dir / "bad.json").string());
  REQUIRE(b.problems.size() == 1);
  CHECK(b.problems[0].where == "line 1, column 10");

  fs::remove_all(dir);
}

TEST_CASE("parse_endpoint") {
  struct Good {
    const char* text;
    Endpoint::Kind kind;
    const char* host;
    uint16_t port;
    const char* path;
  };
  const std::vector<Good> good = {
      {"1.2.3.4:8443", Endpoint::Kind::tcp, "1.2.3.4", 8443, ""},
      {"0.0.0.0:0", Endpoint::Kind::tcp, "0.0.0.0", 0, ""},
      {"127.0.0.1:65535", Endpoint::Kind::tcp, "127.0.0.1", 65535, ""},
      {"[::1]:9901", Endpoint::Kind::tcp, "::1", 9901, ""},
      {"[::]:8443", Endpoint::Kind::tcp, "::", 8443, ""},
      {"[2001:db8::7]:80", Endpoint::Kind::tcp, "2001:db8::7", 80, ""},
      {"[::ffff:127.0.0.1]:80", Endpoint::Kind::tcp, "::ffff:127.0.0.1", 80, ""},
      {"localhost:80", Endpoint::Kind::tcp, "localhost", 80, ""},
      {"LocalHost:80", Endpoint::Kind::tcp, "localhost", 80, ""},
      {"unix:/abs/path", Endpoint::Kind::unix_socket, "", 0, "/abs/path"},
      {"unix:/run/app.sock", Endpoint::Kind::unix_socket, "", 0, "/run/app.sock"},
  };
  for (const auto& g : good) {
    CAPTURE(g.text);
    std::string err;
    auto ep = parse_endpoint(g.text, &err);
    REQUIRE(ep.has_value());
    CHECK(err.empty());
    CHECK(ep->kind == g.kind);
    CHECK(ep->host == g.host);
    CHECK(ep->port == g.port);
    CHECK(ep->path == g.path);
    CHECK(ep->text == g.text);
  }

  struct Bad {
    std::string text;
    const char* fragment;
  };
  const std::vector<Bad> bad = {
      {"", "empty address"},
      {"1.2.3.4", "missing port"},
      {"1.2.3.4:", "missing port"},
      {":8443", "missing host"},
      {"1.2.3.4:65536", "invalid port"},
      {"1.2.3.4:123456", "invalid port"},
      {"1.2.3.4:-1", "invalid port"},
      {"1.2.3.4:80a", "invalid port"},
      {"1.2.3.4: 80", "invalid port"},
      {"1.2.3.256:80", "must be an IP address"},
      {"1.2.3:80", "must be an IP address"},
      {"01.2.3.4:80", "must be an IP address"},
      {"example.com:80", "host names are not resolved"},
      {"::1:9901", "brackets"},
      {"[::1]", "missing port"},
      {"[::1]9901", "missing port"},
      {"[::1:9901", "missing ']'"},
      {"[1.2.3.4]:80", "invalid IPv6"},
      {"[fe80::1%eth0]:80", "invalid IPv6"},
      {"[::1]:", "missing port"},
      {"unix:", "must be absolute"},
      {"unix:relative.sock", "must be absolute"},
      {"unix:/run/", "names a directory"},
      {"unix:/" + std::string(107, 'a'), "longer than 107"},
      {std::string("1.2.3.4:80\0x", 12), "NUL"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.text);
    std::string err;
    auto ep = parse_endpoint(b.text, &err);
    CHECK_FALSE(ep.has_value());
    CHECK(err.find(b.fragment) != std::string::npos);
  }
  CHECK(parse_endpoint("unix:/" + std::string(106, 'a'), nullptr).has_value());
  CHECK_FALSE(parse_endpoint("nonsense", nullptr).has_value());  // null error pointer is fine
}

TEST_CASE("Endpoint::is_loopback") {
  struct Case {
    const char* text;
    bool loopback;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:1", true},          {"127.255.255.254:1", true}, {"127.0.0.0:1", true},
      {"[::1]:1", true},              {"localhost:1", true},       {"unix:/run/x.sock", true},
      {"[::ffff:127.0.0.2]:1", true}, {"0.0.0.0:1", false},        {"128.0.0.1:1", false},
      {"126.255.255.255:1", false},   {"10.0.0.1:1", false},       {"[::]:1", false},
      {"[::2]:1", false},             {"[::ffff:10.0.0.1]:1", false},
      {"[2001:db8::1]:1", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto ep = parse_endpoint(c.text, nullptr);
    REQUIRE(ep.has_value());
    CHECK(ep->is_loopback() == c.loopback);
  }
}

TEST_CASE("ConfigProblem::to_string") {
  CHECK(ConfigProblem{"tls.cert", "required"}.to_string() == "tls.cert: required");
  CHECK(ConfigProblem{"", "bare"}.to_string() == "bare");
}

TEST_CASE("http: path_policy and headers_with_underscores, defaults reject") {
  {
    auto r = parse(with(""));
    require_ok(r);
    CHECK(r.config->http.path_policy == PathPolicy::reject);
    CHECK(r.config->http.headers_with_underscores == HttpConfig::Underscores::reject);
  }
  {
    auto r = parse(with(R"("http": {"path_policy": "reject", "headers_with_underscores": "reject"})"));
    require_ok(r);  // the SPEC §11 example's values
    CHECK(r.config->http.path_policy == PathPolicy::reject);
  }
  struct V {
    const char* json;
    PathPolicy path;
    HttpConfig::Underscores underscores;
  };
  const V values[] = {
      {R"({"path_policy": "rewrite"})", PathPolicy::rewrite, HttpConfig::Underscores::reject},
      {R"({"headers_with_underscores": "drop"})", PathPolicy::reject, HttpConfig::Underscores::drop},
      {R"({"path_policy": "rewrite", "headers_with_underscores": "allow"})", PathPolicy::rewrite,
       HttpConfig::Underscores::allow},
      {R"({})", PathPolicy::reject, HttpConfig::Underscores::reject},
  };
  for (const V& v : values) {
    INFO(v.json);
    auto r = parse(with(std::string(R"("http": )") + v.json));
    require_ok(r);
    CHECK(r.config->http.path_policy == v.path);
    CHECK(r.config->http.headers_with_underscores == v.underscores);
  }
  struct E {
    const char* json;
    const char* where;
    const char* message;
  };
  const E errors[] = {
      {R"("http": {"path_policy": "normalize"})", "http.path_policy", "must be one of reject, rewrite"},
      {R"("http": {"path_policy": "rewrit"})", "http.path_policy", "did you mean \"rewrite\"?"},
      {R"("http": {"path_policy": true})", "http.path_policy", "must be a string"},
      {R"("http": {"headers_with_underscores": "ignore"})", "http.headers_with_underscores",
       "must be one of reject, drop, allow"},
      {R"("http": {"path_polcy": "reject"})", "http.path_polcy", "did you mean \"path_policy\"?"},
      {R"("http": {"merge_slashes": true})", "http.merge_slashes", "unknown key"},
      {R"("http": [])", "http", "must be an object, got an array"},
      {R"("htp": {})", "htp", "did you mean \"http\"?"},
  };
  for (const E& e : errors) {
    INFO(e.json);
    auto r = parse(with(e.json));
    INFO(dump(r));
    CHECK_FALSE(r.config.has_value());
    CHECK(find_problem(r, e.where, e.message) != nullptr);
  }
}

TEST_CASE("a peer's own-org or duplicate problem comes before its other fields' problems, after its unknown keys") {
  auto r = parse(with(R"("peers": [{"org": "partner-labs"},
      {"org": "partner-labs", "zzz": 1, "allowed_regions": [1], "endpoints": ["ftp://x"]}])"));
  std::vector<std::string> wheres;
  for (const ConfigProblem& p : r.problems) wheres.push_back(p.where);
  CHECK(wheres == std::vector<std::string>{"peers[1].zzz", "peers[1].org", "peers[1].allowed_regions[0]",
                                           "peers[1].endpoints[0]"});
}
