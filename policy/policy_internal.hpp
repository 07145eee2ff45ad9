// Internal: the compiled policy (what compile_policy builds and evaluate
// reads) and the rate-limiter state. Not part of the public API.
#pragma once

#include <roaring/roaring.hh>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/grant.hpp"
#include "policy/cidr.hpp"
#include "policy/limit_cell.hpp"
#include "policy/policy.hpp"

namespace fedproxy::policy {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct PeerEntry {
  std::string slug;
  std::string entity_uri;
  std::vector<std::string> endpoints;
  std::optional<std::string> pin;  // cert SHA-256, 64 lowercase hex
  TrustLevel trust = TrustLevel::verified;
  int64_t expires_at_ms = kNever;
  std::string allowed_regions;         // compact JSON array or ""
  std::string allowed_artifact_types;  // compact JSON array or ""
  std::vector<uint32_t> grants;        // indexes into Snapshot::Impl::grants
  // The peer's own trust anchors (SPEC §3); empty = tls.ca_bundle decides.
  std::vector<AnchorInfo> anchors;
  std::vector<std::string> anchor_spki;  // their key hashes, sorted and unique
  std::optional<std::string> trust_domain;
};


struct GrantEntry {
  std::string id;
  uint32_t peer = 0;  // index into Snapshot::Impl::peers
  config::GrantStatus status = config::GrantStatus::pending;
  int64_t expires_at_ms = kNever;
  std::vector<std::string> methods;
  Roaring resources;  // interned resource ids
  Roaring excluded;
  uint32_t max_rows = 500;
  std::string max_rows_text = "500";
  std::string scope_json = "{}";
  bool has_rate_limit = false;
  double rps = 0;
  uint32_t burst = 0;
  int64_t interval_us = 0;   // 1e6 / rps, ≥ 1
  int64_t tolerance_us = 0;  // (burst - 1) * interval
  int64_t requests_per_day = 0;  // quota (SPEC §14); 0 = none
  int64_t bytes_per_day = 0;
  bool limited() const noexcept { return has_rate_limit || requests_per_day || bytes_per_day; }
  bool has_source_cidrs = false;
  detail::CidrSet source_cidrs;
  bool enforce = true;
  bool approved_sensitive = false;
};

struct Route {
  std::string prefix;  // canonical (canonicalize_target), case as configured
  uint32_t resource = 0;
};

// Route prefixes are compared ASCII case-insensitively (SPEC §4).
struct AsciiCaseHash {
  size_t operator()(std::string_view s) const noexcept;
};
struct AsciiCaseEqual {
  bool operator()(std::string_view a, std::string_view b) const noexcept;
};

struct Snapshot::Impl {
  uint64_t generation = 0;  // unique per compiled snapshot (rate-limiter binding)
  std::vector<PeerEntry> peers;
  std::vector<GrantEntry> grants;
  std::vector<std::string> resource_names;  // interned id → name
  std::vector<Route> routes;                // longest prefix first
  // Route lookup: prefix text → index into routes, and which prefix lengths
  // exist, so a path is matched by probing only its segment-boundary
  // prefixes (longest first) that have a route of that length.
  std::unordered_map<std::string_view, uint32_t, AsciiCaseHash, AsciiCaseEqual> route_by_prefix;
  std::vector<bool> route_len;
  // Sorted lookups (binary search over string_views into the entries above).
  std::vector<std::pair<std::string_view, uint32_t>> peer_by_uri;
  std::vector<std::pair<std::string_view, uint32_t>> peer_by_slug;
  std::vector<std::pair<std::string_view, uint32_t>> grant_by_id;
  // Keys of CAs trusted only as some peer's own anchor (peer_only_anchor_spki).
  std::vector<std::string> peer_only_anchor_spki;
  bool enforce = true;
  bool limit_reject = false;  // on_limit = reject
  std::string limit_param = "limit";
};

// Finds `key` in a sorted (key, index) table. Allocates nothing.
inline const uint32_t* find_sorted(const std::vector<std::pair<std::string_view, uint32_t>>& v,
                                   std::string_view key) noexcept {
  size_t lo = 0, hi = v.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid].first < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < v.size() && v[lo].first == key ? &v[lo].second : nullptr;
}

// ---------------------------------------------------------------------------
// Rate limiting and quotas: one LimitCell per limited grant (limit_cell.hpp).
// The table of cells lives outside the immutable snapshot so that a reload
// keeps the state of every grant that is still there.
struct LimiterTable {
  uint64_t generation = 0;                          // of the snapshot it was bound to
  std::vector<std::shared_ptr<LimitCell>> by_grant; // index = grant index; null = not limited
  std::vector<std::pair<std::string, std::shared_ptr<LimitCell>>> by_id;  // sorted, for rebind
  std::vector<LimitedGrant> limited;  // in grant order, for the lease manager and /status
};

LimitParams limit_params(const GrantEntry& g) noexcept;

struct RateLimiter::Impl {
  Impl();
  const uint64_t uid;  // unique per limiter ever created (per-thread cache key)
  mutable std::mutex mu;                      // guards table; serialises rebind()
  std::shared_ptr<const LimiterTable> table;  // guarded by mu
  std::atomic<uint64_t> version{0};           // bumped (under mu) with each new table
  std::atomic<LimitMode> mode{LimitMode::local};
  std::atomic<uint32_t> replicas{1};
};

// The table to use from this thread. Each thread keeps its own reference to
// the current table and revalidates it with one atomic load of `version`; only
// after a rebind does it take the mutex to pick up the new table. So workers
// neither contend on a lock nor on the shared_ptr's reference count.
const LimiterTable* current_table(const RateLimiter::Impl& impl) noexcept;

// The cell of grant g (of snapshot s) in the limiter's table, or null.
LimitCell* find_cell(const LimiterTable* table, const Snapshot::Impl& s, const GrantEntry& g) noexcept;

// ---------------------------------------------------------------------------
// Routes.

// The longest route whose prefix matches the canonical path on whole
// segments (ASCII case-insensitively), or null. A prefix "/a/b" matches
// "/a/b" and "/a/b/..." but not "/a/bc"; a prefix ending in "/" matches
// everything below it.
const Route* find_route(const Snapshot::Impl& s, std::string_view path) noexcept;

}  // namespace fedproxy::policy
