// Shared fixture for the policy tests: a config with a handful of peers and
// routes, grants supplied per test, and a compact way to run evaluate().
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/manifest.hpp"
#include "policy/policy.hpp"

namespace fedproxy::policy::testing {

using namespace fedproxy::config;

inline constexpr const char* kPartnerUri = "spiffe://partner-labs.example/nodes/primary";
inline constexpr const char* kOtherUri = "spiffe://other-org.example/nodes/a";
inline constexpr const char* kPinnedUri = "spiffe://pinned.example/nodes/a";
inline constexpr const char* kPin = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline constexpr const char* kGrantA = "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab";
inline constexpr const char* kGrantB = "11111111-2222-3333-4444-555555555555";

// 2026-01-01T00:00:00Z in Unix milliseconds.
inline constexpr int64_t kNow = 1767225600000;

inline std::string peers_json() {
  return R"("peers": [
    {"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary",
     "allowed_regions": ["eu", "us"]},
    {"org": "other-org", "entity_uri": "spiffe://other-org.example/nodes/a", "trust_level": "full"},
    {"org": "blocked-org", "entity_uri": "spiffe://blocked.example/nodes/a", "trust_level": "none"},
    {"org": "expired-org", "entity_uri": "spiffe://expired.example/nodes/a",
     "expires_at": "2025-06-01T00:00:00Z"},
    {"org": "pinned-org", "entity_uri": "spiffe://pinned.example/nodes/a",
     "cert_fingerprint": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}])";
}

inline std::string routes_json() {
  return R"("routes": [
    {"prefix": "/api/v1/tasks", "resource": "tasks"},
    {"prefix": "/api/v1/tasks/archive", "resource": "archive"},
    {"prefix": "/api/v1/notes", "resource": "notes"},
    {"prefix": "/api/v1/credentials", "resource": "credentials"},
    {"prefix": "/api/v1/api_keys", "resource": "api_keys"},
    {"prefix": "/api/v1/secrets", "resource": "secrets", "sensitive": true},
    {"prefix": "/static/", "resource": "static"}])";
}

// A full config document: node, peers, routes, `grants` (a JSON array) and
// optional extra top-level members.
inline std::string config_json(const std::string& grants, const std::string& extra = "") {
  return std::string("{\"node\": {\"org\": \"acme-corp\", \"entity_uri\": "
                     "\"spiffe://acme.example/nodes/a\"},\n") +
         peers_json() + ",\n" + routes_json() + ",\n\"grants\": " + grants +
         (extra.empty() ? "" : ",\n" + extra) + "}";
}

inline Config parse_ok(const std::string& json) {
  ConfigResult r = parse_config(json, "/etc/fedproxy");
  std::string dump;
  for (const auto& p : r.problems) dump += "  " + p.to_string() + "\n";
  INFO("config problems:\n" << dump << json);
  REQUIRE(r.config.has_value());
  return *r.config;
}

inline std::string dump(const CompileResult& r) {
  std::string out;
  for (const auto& p : r.problems) out += "  " + p.to_string() + "\n";
  return out;
}

inline CompileResult compile_json(const std::string& json, const std::vector<Manifest>& manifests = {},
                                  const PeerAnchors& anchors = {}) {
  return compile_policy(parse_ok(json), manifests, anchors);
}

inline std::shared_ptr<const Snapshot> compile_ok(const std::string& json,
                                                  const std::vector<Manifest>& manifests = {},
                                                  const PeerAnchors& anchors = {}) {
  CompileResult r = compile_json(json, manifests, anchors);
  INFO("compile problems:\n" << dump(r));
  REQUIRE(r.problems.empty());
  REQUIRE(r.snapshot != nullptr);
  return r.snapshot;
}

// The problem at `where` whose message contains `fragment`, or nullptr.
inline const ConfigProblem* find_problem(const CompileResult& r, const std::string& where,
                                         const std::string& fragment = "") {
  for (const auto& p : r.problems) {
    if (p.where == where && p.message.find(fragment) != std::string::npos) return &p;
  }
  return nullptr;
}

// A grant object with the spec's fields; `extra` is spliced in (later keys
// must not repeat earlier ones: the config parser refuses duplicates).
inline std::string grant(const std::string& id, const std::string& fields) {
  return "{\"id\": \"" + id + "\", " + fields + "}";
}

// evaluate()'s inputs for one Call; views into the Call and into `target`,
// so it is filled in place and never moved.
struct Prepared {
  TargetResult target;
  std::vector<std::string_view> overrides;
  Subject subject;
  RequestInfo info;
  Prepared() = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
};

// One request as the proxy presents it: the raw target is canonicalized
// first (as the ingress does), a refusal answered by refuse_target.
struct Call {
  std::vector<std::string> sans{kPartnerUri};
  std::string fingerprint = std::string(64, 'b');
  std::vector<std::string> chain;  // the verified chain's CA key hashes
  std::optional<std::string> oid;
  std::string dev_peer;
  std::string method = "GET";
  std::string target = "/api/v1/tasks";
  // "rewrite" so that routing through resolved dot segments stays testable;
  // refusals of the default policy are in target_test.cpp.
  PathPolicy path_policy = PathPolicy::rewrite;
  std::vector<std::string> overrides;  // method-override header values
  std::string authorization;
  std::string source_ip = "10.1.2.3";
  int64_t now = kNow;

  void prepare(Prepared& p) const {
    p.target = canonicalize_target(target, method, path_policy);
    p.overrides.assign(overrides.begin(), overrides.end());
    p.subject.uri_sans = sans;
    p.subject.der_sha256 = fingerprint;
    p.subject.chain_spki_sha256 = chain;
    if (oid) p.subject.grant_oid = std::string_view(*oid);
    p.subject.dev_peer = dev_peer;
    p.info.method = method;
    p.info.set_target(p.target.target);
    p.info.method_overrides = p.overrides;
    p.info.authorization = authorization;
    p.info.source_ip = source_ip;
  }

  Decision run(const Snapshot& s, RateLimiter& limiter) const {
    Prepared p;
    prepare(p);
    if (p.target.status != TargetStatus::ok) return refuse_target(p.target.status);
    return evaluate(s, limiter, p.subject, p.info, now);
  }
};

}  // namespace fedproxy::policy::testing
