// Token buckets per grant (SPEC §4), as GCRA cells (see policy_internal.hpp).
// The bucket set lives outside the immutable snapshot so that a reload keeps
// the state of every grant that is still there: rebind() publishes a new
// table that reuses the Bucket objects of unchanged ids; evaluate() reaches
// it through a per-thread cache (current_table).

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
}  // namespace

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
    if (!g.has_rate_limit) continue;
    std::shared_ptr<Bucket> bucket;
    if (old) {
      auto it = std::lower_bound(old->by_id.begin(), old->by_id.end(), g.id,
                                 [](const auto& e, const std::string& id) { return e.first < id; });
      if (it != old->by_id.end() && it->first == g.id) bucket = it->second;
    }
    // A changed rps/burst keeps the cell: its state is a time (when the
    // bucket is next full), which the new interval reads consistently.
    if (!bucket) bucket = std::make_shared<Bucket>();
    table->by_grant[i] = bucket;
    table->by_id.emplace_back(g.id, std::move(bucket));
  }
  std::sort(table->by_id.begin(), table->by_id.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  impl_->table = std::move(table);
  impl_->version.fetch_add(1, std::memory_order_release);
}

TakeResult take_token(Bucket& b, const GrantEntry& g, int64_t now_us) noexcept {
  int64_t tat = b.tat_us.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now_us);
    if (base - now_us > g.tolerance_us) {
      return {false, base - g.tolerance_us - now_us};
    }
    if (b.tat_us.compare_exchange_weak(tat, base + g.interval_us, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
      return {true, 0};
    }
  }
}

}  // namespace fedproxy::policy
