// The limiter's table of cells (limit_cell.hpp), one per limited grant. The
// table lives outside the immutable snapshot so that a reload keeps the state
// of every grant that is still there: rebind() publishes a new table that
// reuses the cells of unchanged ids; evaluate() reaches it through a
// per-thread cache (current_table).

#include <algorithm>

#include "policy/policy_internal.hpp"

namespace fedproxy::policy {

namespace {
std::atomic<uint64_t> g_limiter_uid{0};

struct TableCache {
  uint64_t uid = 0;
  uint64_t version = 0;
  std::shared_ptr<const LimiterTable> table;
};

LimitCell* find_by_id(const LimiterTable& table, std::string_view id) noexcept {
  const auto& ids = table.by_id;
  auto it = std::lower_bound(ids.begin(), ids.end(), id,
                             [](const auto& e, std::string_view key) { return std::string_view(e.first) < key; });
  return it != ids.end() && it->first == id ? it->second.get() : nullptr;
}
}  // namespace

LimitParams limit_params(const GrantEntry& g) noexcept {
  LimitParams p;
  p.has_rate = g.has_rate_limit;
  p.interval_us = g.interval_us;
  p.tolerance_us = g.tolerance_us;
  p.burst = g.burst;
  p.requests_per_day = g.requests_per_day;
  p.bytes_per_day = g.bytes_per_day;
  return p;
}

RateLimiter::Impl::Impl() : uid(++g_limiter_uid) {}

const LimiterTable* current_table(const RateLimiter::Impl& impl) noexcept {
  thread_local TableCache cache;
  const uint64_t version = impl.version.load(std::memory_order_acquire);
  if (cache.uid != impl.uid || cache.version != version || version == 0) {
    // Slow path (first use on this thread, or after a rebind): take a
    // reference to the current table. Copying a shared_ptr does not allocate.
    std::lock_guard<std::mutex> lock(impl.mu);
    cache.table = impl.table;
    cache.uid = impl.uid;
    cache.version = impl.version.load(std::memory_order_relaxed);
  }
  return cache.table.get();
}

LimitCell* find_cell(const LimiterTable* table, const Snapshot::Impl& s, const GrantEntry& g) noexcept {
  if (table == nullptr) return nullptr;
  if (table->generation == s.generation) return table->by_grant[static_cast<size_t>(&g - s.grants.data())].get();
  return find_by_id(*table, g.id);  // the limiter is bound to another snapshot (a reload in progress)
}

RateLimiter::RateLimiter() : impl_(std::make_unique<Impl>()) {}
RateLimiter::~RateLimiter() = default;

void RateLimiter::rebind(const Snapshot& snapshot) {
  const Snapshot::Impl& s = snapshot.impl();
  std::lock_guard<std::mutex> lock(impl_->mu);
  const std::shared_ptr<const LimiterTable>& old = impl_->table;
  if (old && old->generation == s.generation) return;

  auto table = std::make_shared<LimiterTable>();
  table->generation = s.generation;
  table->by_grant.resize(s.grants.size());
  for (size_t i = 0; i < s.grants.size(); ++i) {
    const GrantEntry& g = s.grants[i];
    if (!g.limited()) continue;
    std::shared_ptr<LimitCell> cell;
    if (old) {
      auto it = std::lower_bound(old->by_id.begin(), old->by_id.end(), g.id,
                                 [](const auto& e, const std::string& id) { return e.first < id; });
      if (it != old->by_id.end() && it->first == g.id) cell = it->second;
    }
    // A changed rps/burst keeps the cell: its GCRA state is a time (when the
    // bucket is next full), which the new interval reads consistently, and
    // leased tokens and the day's counts stay valid.
    if (!cell) cell = std::make_shared<LimitCell>();
    table->by_grant[i] = cell;
    table->by_id.emplace_back(g.id, cell);
    table->limited.push_back({g.id, limit_params(g), std::move(cell)});
  }
  std::sort(table->by_id.begin(), table->by_id.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  impl_->table = std::move(table);
  impl_->version.fetch_add(1, std::memory_order_release);
}

void RateLimiter::set_mode(LimitMode mode) noexcept { impl_->mode.store(mode, std::memory_order_release); }
LimitMode RateLimiter::mode() const noexcept { return impl_->mode.load(std::memory_order_acquire); }
void RateLimiter::set_replicas(uint32_t replicas) noexcept {
  impl_->replicas.store(std::max<uint32_t>(1, replicas), std::memory_order_relaxed);
}
uint32_t RateLimiter::replicas() const noexcept { return impl_->replicas.load(std::memory_order_relaxed); }

std::vector<LimitedGrant> RateLimiter::limited_grants() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->table ? impl_->table->limited : std::vector<LimitedGrant>{};
}

void RateLimiter::count_bytes(std::string_view grant_id, int64_t bytes, int64_t now_unix_ms) {
  if (bytes <= 0 || grant_id.empty()) return;
  const LimiterTable* table = current_table(*impl_);
  LimitCell* cell = table ? find_by_id(*table, grant_id) : nullptr;
  if (cell == nullptr) return;
  roll_day(*cell, utc_day(now_unix_ms));
  cell->bytes_used.fetch_add(bytes, std::memory_order_relaxed);
}

}  // namespace fedproxy::policy
