// Micro-benchmark of policy::evaluate (not a test): decisions per second and
// allocations per decision, on a policy of realistic size (64 peers, 200
// routes, 256 grants with source CIDRs, filters and rate limits); and of
// canonicalize_target, which runs once per request before it.
//
//   ./build/tests/bench/policy_bench [seconds-per-run, default 1]
//
// Allocations are counted by a replaced global operator new
// (tests/unit/policy/alloc_counter.cpp).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "config/config.hpp"
#include "policy/policy.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;

namespace {

constexpr int kPeers = 64;
constexpr int kRoutes = 200;
constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z
const auto g_start = std::chrono::steady_clock::now();

std::string peer_name(int i) { return "peer-" + std::to_string(100 + i); }
std::string peer_uri(int i) { return "spiffe://" + peer_name(i) + ".example/nodes/primary"; }

std::string make_config() {
  std::string c = R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},)";
  c += "\"peers\": [";
  for (int i = 0; i < kPeers; ++i) {
    if (i) c += ",";
    c += "{\"org\": \"" + peer_name(i) + "\", \"entity_uri\": \"" + peer_uri(i) +
         "\", \"allowed_regions\": [\"eu\"]}";
  }
  c += "], \"routes\": [";
  for (int r = 0; r < kRoutes; ++r) {
    if (r) c += ",";
    c += "{\"prefix\": \"/api/v1/res" + std::to_string(r) + "\", \"resource\": \"res" +
         std::to_string(r) + "\"}";
  }
  c += "], \"grants\": [";
  for (int i = 0; i < kPeers; ++i) {
    for (int k = 0; k < 4; ++k) {
      if (i || k) c += ",";
      std::string res;
      for (int j = 0; j < 20; ++j) {
        if (j) res += ",";
        res += "\"res" + std::to_string((i * 3 + j) % kRoutes) + "\"";
      }
      c += "{\"id\": \"grant-" + std::to_string(i) + "-" + std::to_string(k) + "\", \"peer\": \"" +
           peer_name(i) + "\", \"resources\": [" + res +
           "], \"methods\": [\"GET\", \"HEAD\", \"POST\"]"
           ", \"filters\": {\"res" + std::to_string((i * 3) % kRoutes) +
           "\": {\"include_teams\": [\"t1\", \"t2\"]}}"
           ", \"max_rows_per_query\": 200"
           ", \"rate_limit\": {\"rps\": 1000000, \"burst\": 1000000}"
           ", \"source_cidrs\": [\"10.0.0.0/8\", \"192.168.0.0/16\", \"2001:db8::/32\"]"
           ", \"expires_at\": \"2030-01-01T00:00:00Z\""
           ", \"status\": \"" + std::string(k == 0 ? "active" : "pending") + "\"}";
    }
  }
  c += "]}";
  return c;
}

struct Req {
  std::vector<std::string> sans;
  std::string fingerprint = std::string(64, 'a');
  std::string method, target, authorization, source_ip;
  TargetResult canonical;  // of target (prepare())
};

// Canonicalizes every target up front: evaluate is measured alone.
std::vector<Req> prepare(std::vector<Req> reqs) {
  for (Req& r : reqs) r.canonical = canonicalize_target(r.target, r.method, PathPolicy::rewrite);
  return reqs;
}

// Allowed requests: each peer, one of its resources, a query under the limit.
std::vector<Req> allowed_requests() {
  std::vector<Req> out;
  for (int n = 0; n < 1024; ++n) {
    int i = n % kPeers;
    Req r;
    r.sans = {"spiffe://other.example/x", peer_uri(i)};
    r.method = n % 7 == 0 ? "POST" : "GET";
    int res = (i * 3 + n % 20) % kRoutes;
    r.target = "/api/v1/res" + std::to_string(res) + (n % 5 == 0 ? "//items/./" : "/items/") +
               std::to_string(n) + "?limit=50&sort=-created&q=%7Efoo";
    r.authorization = n % 2 ? "Bearer fg-grant-" + std::to_string(i) + "-0" : "";
    r.source_ip = n % 3 == 0 ? "::ffff:10.1.2.3" : n % 3 == 1 ? "192.168.7.9" : "2001:db8::42";
    out.push_back(std::move(r));
  }
  return out;
}

// A mix: one in four allowed, the rest denied at different stages, and one
// in sixteen rewritten (limit above the maximum).
std::vector<Req> mixed_requests() {
  std::vector<Req> out = allowed_requests();
  for (size_t n = 0; n < out.size(); ++n) {
    Req& r = out[n];
    switch (n % 8) {
      case 1: r.sans = {"spiffe://unknown.example/x"}; break;            // san_mismatch
      case 2: r.source_ip = "172.16.0.1"; break;                         // source_not_allowed
      case 3: r.method = "DELETE"; break;                                // method_not_allowed
      case 4: r.target = "/api/v2/nothing"; break;                       // no_route
      case 5: r.target = "/api/v1/res" + std::to_string((n * 7 + 100) % kRoutes); break;
      case 6: r.target = "/api/v1/res0/../../../etc/passwd"; break;      // ambiguous_path
      case 7: r.target += (n % 16 == 7) ? "&limit=100000" : ""; break;   // rewrite / allowed
      default: break;
    }
  }
  return out;
}

struct Result {
  double per_second;
  double allocs_per_decision;
  long decisions;
  long allowed;
};

Result run(const Snapshot& snap, RateLimiter& limiter, const std::vector<Req>& reqs, double seconds,
           int threads) {
  std::atomic<long> total{0}, allowed{0};
  std::atomic<bool> stop{false};
  long allocs_before = allocation_count();
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      long n = 0, ok = 0;
      size_t idx = static_cast<size_t>(t) * 97;
      while (!stop.load(std::memory_order_relaxed)) {
        // The injected clock follows real time (read once per batch), so the
        // generous rate limits never run dry across runs and threads.
        const int64_t now = kNow + std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - g_start)
                                       .count();
        for (int k = 0; k < 1024; ++k) {
          const Req& r = reqs[idx++ % reqs.size()];
          Subject s;
          s.uri_sans = r.sans;
          s.der_sha256 = r.fingerprint;
          RequestInfo info;
          info.method = r.method;
          info.set_target(r.canonical.target);
          info.authorization = r.authorization;
          info.source_ip = r.source_ip;
          Decision d = r.canonical.status == TargetStatus::ok ? evaluate(snap, limiter, s, info, now)
                                                               : refuse_target(r.canonical.status);
          ok += d.allow;
          ++n;
        }
      }
      total += n;
      allowed += ok;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long allocs = allocation_count() - allocs_before;
  // The thread objects themselves allocate a little; spread over millions.
  return {static_cast<double>(total) / elapsed, static_cast<double>(allocs) / static_cast<double>(total),
          total.load(), allowed.load()};
}

// canonicalize_target over the targets of `reqs` (a fifth need rewriting).
void canonicalize_rate(const std::vector<Req>& reqs, double seconds) {
  long n = 0;
  size_t bytes = 0;
  const long allocs_before = allocation_count();
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    for (int k = 0; k < 1024; ++k) {
      const Req& r = reqs[static_cast<size_t>(n) % reqs.size()];
      bytes += canonicalize_target(r.target, r.method, PathPolicy::rewrite).target.text.size();
      ++n;
    }
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-34s %12.0f targets/s     %.6f allocations/target   (%zu bytes out)\n", "canonicalize_target, 1 thread",
              static_cast<double>(n) / elapsed,
              static_cast<double>(allocation_count() - allocs_before) / static_cast<double>(n), bytes);
}

void print(const char* name, const Result& r) {
  std::printf("%-34s %12.0f decisions/s   %.6f allocations/decision   (%ld decisions, %.1f%% allowed)\n",
              name, r.per_second, r.allocs_per_decision, r.decisions,
              100.0 * static_cast<double>(r.allowed) / static_cast<double>(r.decisions));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (seconds <= 0) seconds = 1.0;
  ConfigResult cfg = parse_config(make_config(), "/");
  if (!cfg.config) {
    for (const auto& p : cfg.problems) std::fprintf(stderr, "%s\n", p.to_string().c_str());
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  CompileResult compiled = compile_policy(*cfg.config, {});
  double compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!compiled.snapshot) {
    for (const auto& p : compiled.problems) std::fprintf(stderr, "%s\n", p.to_string().c_str());
    return 1;
  }
  const Snapshot& snap = *compiled.snapshot;
  RateLimiter limiter;
  limiter.rebind(snap);
  std::printf("policy: %zu peers, %d routes, %zu grants; compiled in %.1f ms; %u hardware threads\n",
              snap.peer_count(), kPeers > 0 ? kRoutes : 0, snap.grant_count(), compile_ms,
              std::thread::hardware_concurrency());

  auto allowed = prepare(allowed_requests());
  auto mixed = prepare(mixed_requests());
  print("allow path, 1 thread", run(snap, limiter, allowed, seconds, 1));
  print("mixed (deny/rewrite), 1 thread", run(snap, limiter, mixed, seconds, 1));
  print("allow path, 2 threads (shared)", run(snap, limiter, allowed, seconds, 2));
  canonicalize_rate(allowed, seconds);
  return 0;
}
