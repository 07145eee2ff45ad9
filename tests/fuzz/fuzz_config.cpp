// libFuzzer target: config JSON parse + validate (config/config), manifest
// parse (config/manifest), policy compilation (policy/compile) and a few
// decisions against the compiled snapshot (policy/evaluate).
//
// Input: text segments separated by lines holding exactly "----":
//   segment 0          the config file (JSON)
//   "#req" segment     request lines "METHOD TARGET [AUTHORIZATION...]" to
//                      evaluate, in addition to a fixed set
//   any other segment  a peer manifest (JSON)
// Checked: no crash, leak or UB; results are either a value or problems,
// never both or neither; manifests survive manifest_to_json →
// parse_manifest unchanged, and valid grants to_json → parse_grant; a
// partial config (what `fedproxy check` compiles to report policy problems)
// compiles without crashing; decisions are
// self-consistent (status and code agree, an allowed request has a peer, a
// grant and a resource, a rewritten limit is not rewritten again and keeps
// the canonical path, ...). Targets are canonicalized first, as the ingress
// does (canonicalize_target itself is fuzzed by fuzz_target).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <picojson.h>

#include "config/config.hpp"
#include "config/grant.hpp"
#include "config/manifest.hpp"
#include "policy/policy.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;

namespace {

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z

struct Req {
  std::string method, target, authorization;
};

std::vector<std::string_view> split_segments(std::string_view in) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = in.find("\n----\n", start);
    if (pos == std::string_view::npos || out.size() >= 16) {
      out.push_back(in.substr(start));
      return out;
    }
    out.push_back(in.substr(start, pos - start));
    start = pos + 6;
  }
}

void parse_requests(std::string_view seg, std::vector<Req>& out) {
  while (!seg.empty() && out.size() < 24) {
    size_t nl = seg.find('\n');
    std::string_view line = seg.substr(0, nl);
    seg = nl == std::string_view::npos ? std::string_view() : seg.substr(nl + 1);
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) continue;
    size_t sp2 = line.find(' ', sp1 + 1);
    Req r;
    r.method = std::string(line.substr(0, sp1));
    r.target = std::string(line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1));
    if (sp2 != std::string_view::npos) r.authorization = std::string(line.substr(sp2 + 1));
    out.push_back(std::move(r));
  }
}

void check_problems(const std::vector<ConfigProblem>& problems) {
  for (const ConfigProblem& p : problems) {
    FUZZ_CHECK(!p.message.empty(), "problem without a message");
    (void)p.to_string();
  }
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                                                             : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

void check_manifest_roundtrip(const Manifest& m) {
  const std::string json = manifest_to_json(m);
  ManifestResult again = parse_manifest(json, "roundtrip");
  FUZZ_CHECK(again.manifest.has_value() && again.problems.empty(), "manifest_to_json output does not parse back");
  const Manifest& b = *again.manifest;
  FUZZ_CHECK(b.org == m.org && b.endpoints == m.endpoints && b.tls_cert_fingerprint == m.tls_cert_fingerprint,
             "manifest changes through manifest_to_json");
  // Known, reported: parse_manifest accepts an entity_uri holding bytes that
  // are not UTF-8 (uri_error only refuses controls and whitespace), which
  // manifest_to_json then writes as U+FFFD. Valid UTF-8 must survive.
  if (valid_utf8(m.entity_uri)) FUZZ_CHECK(b.entity_uri == m.entity_uri, "entity_uri changes through manifest_to_json");
}

bool valid_status(const Decision& d) {
  switch (d.code) {
    case DenyCode::none: return d.status == 200;
    case DenyCode::bad_request:
    case DenyCode::ambiguous_path:
    case DenyCode::limit_exceeded: return d.status == 400;
    case DenyCode::rate_limited: return d.status == 429;
    default: return d.status == 403;
  }
}

void check_decision(const Decision& d, const Snapshot& snap, RateLimiter& limiter, const Subject& subject,
                    const RequestInfo& info, int64_t now) {
  FUZZ_CHECK(d.message != nullptr, "decision without a message");
  FUZZ_CHECK(valid_status(d), "status does not match the deny code");
  if (d.code == DenyCode::none) {
    FUZZ_CHECK(d.allow && !d.shadow, "no denial but not allowed");
    FUZZ_CHECK(d.peer != nullptr && d.grant != nullptr && !d.resource.empty(),
               "allowed without a peer, a grant or a resource");
  } else {
    FUZZ_CHECK(d.allow == d.shadow, "a denial is allowed exactly when in shadow mode");
    FUZZ_CHECK(!d.rewritten_target, "a denial rewrote the target");
  }
  if (d.close_connection)
    FUZZ_CHECK(!d.allow && (d.code == DenyCode::san_mismatch || d.code == DenyCode::fingerprint_mismatch),
               "close_connection for another reason");
  if (d.code == DenyCode::rate_limited) FUZZ_CHECK(d.retry_after_s >= 1, "rate_limited without Retry-After");
  FUZZ_CHECK(d.code != DenyCode::bad_request && d.code != DenyCode::ambiguous_path,
             "evaluate refused a target: that is canonicalize_target's job");
  if (d.peer != nullptr) {
    FUZZ_CHECK(!peer_slug(*d.peer).empty(), "peer without a slug");
    (void)peer_allowed_regions(*d.peer);
    (void)peer_allowed_artifact_types(*d.peer);
    (void)peer_entity_uri(*d.peer);
  }
  if (d.grant != nullptr) {
    FUZZ_CHECK(!grant_id(*d.grant).empty(), "grant without an id");
    FUZZ_CHECK(!grant_scope_json(*d.grant).empty(), "grant without scope JSON");
    FUZZ_CHECK(grant_max_rows_text(*d.grant) == std::to_string(grant_max_rows(*d.grant)),
               "max_rows text differs from the number");
  }
  if (d.rewritten_target) {
    const std::string& t = *d.rewritten_target;
    FUZZ_CHECK(d.allow && !d.shadow, "rewrite without an enforced allow");
    const TargetResult canon = canonicalize_target(t, info.method, PathPolicy::reject);
    FUZZ_CHECK(canon.status == TargetStatus::ok && canon.target.text == t,
               "a rewritten target is not a canonical target");
    FUZZ_CHECK(canon.target.path() == info.path, "the limit rewrite changed the path");
    // The rewritten request is within the limit: evaluating it again (fresh
    // rate-limit buckets) must not rewrite it again.
    RateLimiter fresh;
    fresh.rebind(snap);
    RequestInfo again = info;
    again.set_target(canon.target);
    const Decision d2 = evaluate(snap, fresh, subject, again, now);
    FUZZ_CHECK(!d2.rewritten_target, "a rewritten target is rewritten again");
    FUZZ_CHECK(d2.code == DenyCode::none || d2.code == DenyCode::rate_limited,
               "a rewritten target is denied");
  }
  (void)limiter;
}

std::vector<std::string> grant_ids(const Config& c) {
  std::vector<std::string> ids;
  for (const Grant& g : c.grants) {
    if (!g.id.empty()) ids.push_back(g.id);
    if (ids.size() >= 4) break;
  }
  return ids;
}

void evaluate_some(const Snapshot& snap, const Config& config, const std::vector<Req>& extra) {
  std::vector<Req> reqs = {
      {"GET", "/", ""},
      {"GET", "/api/v1/tasks", ""},
      {"GET", "/api/v1/tasks/../notes?limit=100000&x=1", ""},
      {"HEAD", "/api/v1/./tasks/%2e%2e/tasks?limit", ""},
      {"POST", "/api/v1/secrets/x?limit=-1&limit=5", ""},
      {"GET", "/../etc/passwd", ""},
      {"GET", "/a%zz", ""},
      {"DELETE", "http://peer/api/v1/tasks?limit=0", "Bearer fg-00000000-0000-0000-0000-000000000000"},
  };
  const std::vector<std::string> ids = grant_ids(config);
  for (const RouteConfig& r : config.routes) {
    if (reqs.size() >= 14) break;
    reqs.push_back({"GET", r.prefix + "/x?" + config.limit_param + "=99999999", ""});
  }
  for (const std::string& id : ids) reqs.push_back({"GET", "/api/v1/tasks?limit=7", "Bearer fg-" + id});
  reqs.insert(reqs.end(), extra.begin(), extra.end());

  RateLimiter limiter;
  limiter.rebind(snap);
  std::vector<Snapshot::PeerInfo> peers = snap.peers();
  FUZZ_CHECK(peers.size() == snap.peer_count(), "peers() size differs from peer_count()");
  if (peers.size() > 6) peers.resize(6);
  std::vector<std::vector<std::string>> san_sets;
  for (const auto& p : peers) san_sets.push_back({p.entity_uri});
  san_sets.push_back({"spiffe://nobody.example/x"});
  if (peers.size() >= 2) san_sets.push_back({peers[0].entity_uri, peers[1].entity_uri});

  for (size_t si = 0; si < san_sets.size(); ++si) {
    const std::string pin = si < peers.size() && peers[si].cert_fingerprint ? *peers[si].cert_fingerprint
                                                                             : std::string(64, 'b');
    std::vector<std::optional<std::string>> oids = {std::nullopt};
    if (!ids.empty()) oids.push_back(ids[si % ids.size()]);
    for (const auto& oid : oids) {
      Subject subject;
      subject.uri_sans = san_sets[si];
      subject.der_sha256 = pin;
      if (oid) subject.grant_oid = std::string_view(*oid);
      for (const Req& r : reqs) {
        const PathPolicy policy = (r.target.size() & 2) ? PathPolicy::rewrite : PathPolicy::reject;
        const TargetResult target = canonicalize_target(r.target, r.method, policy);
        if (target.status != TargetStatus::ok) {
          const Decision d = refuse_target(target.status);
          FUZZ_CHECK(!d.allow && d.status == 400 && !d.shadow, "a refused target is not a 400");
          continue;
        }
        static constexpr std::string_view kOverrides[] = {"get", "DELETE"};
        RequestInfo info;
        info.method = r.method;
        info.set_target(target.target);
        info.method_overrides = std::span<const std::string_view>(kOverrides).first((r.target.size() >> 2) % 3);
        info.authorization = r.authorization;
        info.source_ip = (r.target.size() & 1) ? "10.1.2.3" : "2001:db8::1";
        const int64_t now = (r.target.size() % 3 == 0) ? int64_t{0} : kNow;
        const Decision d = evaluate(snap, limiter, subject, info, now);
        check_decision(d, snap, limiter, subject, info, now);
      }
    }
  }
  // Insecure dev mode: no SANs, a dev peer slug.
  for (const auto& p : peers) {
    Subject subject;
    subject.dev_peer = p.slug;
    const TargetResult target = canonicalize_target("/api/v1/tasks?limit=3", "GET", PathPolicy::reject);
    RequestInfo info;
    info.method = "GET";
    info.set_target(target.target);
    info.source_ip = "127.0.0.1";
    check_decision(evaluate(snap, limiter, subject, info, kNow), snap, limiter, subject, info, kNow);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> segs = split_segments(input);

  std::vector<Manifest> manifests;
  std::vector<Req> extra;
  for (size_t i = 1; i < segs.size(); ++i) {
    if (segs[i].rfind("#req\n", 0) == 0) {
      parse_requests(segs[i].substr(5), extra);
      continue;
    }
    ManifestResult m = parse_manifest(std::string(segs[i]), "peers/seg" + std::to_string(i) + ".json");
    FUZZ_CHECK(m.manifest.has_value() != !m.problems.empty(), "manifest: both or neither of value and problems");
    check_problems(m.problems);
    if (m.manifest) {
      check_manifest_roundtrip(*m.manifest);
      manifests.push_back(std::move(*m.manifest));
    }
  }

  EnvOverrides env;
  if (size > 0 && (data[size - 1] & 0x0f) == 0x0f) env.tls_cert = "/override/cert.pem";
  ConfigResult cr = parse_config(std::string(segs[0]), "/etc/fedproxy", env);
  FUZZ_CHECK(cr.config.has_value() == cr.problems.empty(), "config: both or neither of value and problems");
  check_problems(cr.problems);
  if (!cr.config) {
    // `fedproxy check` compiles what was valid to report policy problems too.
    if (cr.partial) {
      CompileResult pr = compile_policy(*cr.partial, manifests);
      check_problems(pr.problems);
    }
    return 0;
  }
  const Config& config = *cr.config;
  FUZZ_CHECK(!config.dir.empty(), "config without a base dir");
  if (config.grant_problems.empty()) {
    for (const Grant& g : config.grants) {
      FUZZ_CHECK(parse_grant(to_json(g), g.where).grant == g, "grant changes through to_json");
    }
  }
  CompileResult comp = compile_policy(config, manifests);
  FUZZ_CHECK((comp.snapshot != nullptr) == comp.problems.empty(), "compile: both or neither of snapshot and problems");
  check_problems(comp.problems);
  if (!comp.snapshot) return 0;
  FUZZ_CHECK(comp.snapshot->grant_count() == config.grants.size(), "grant count changed by compilation");
  evaluate_some(*comp.snapshot, config, extra);
  return 0;
}
