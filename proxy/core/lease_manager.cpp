#include "proxy/core/lease_manager.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace fedproxy::core {

namespace {

constexpr uint64_t kTickMs = 10;
constexpr uint64_t kBytesSyncMs = 100;
constexpr uint64_t kPingMs = 1000;  // an idle replica still notices a hung or gone Redis
constexpr uint64_t kExhaustedRetryMs = 1000;
constexpr uint64_t kBackoffFirstMs = 200;
constexpr uint64_t kBackoffMaxMs = 5000;

// KEYS[1]: the grant's GCRA cell; ARGV: interval_us, tolerance_us, want.
// Returns {tokens granted, µs until the next token conforms}. Redis' clock,
// so replicas' clocks do not matter.
constexpr const char* kRateScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local k = 0
if tat - now <= tol then k = math.floor((tol - (tat - now)) / interval) + 1 end
if k > want then k = want end
tat = tat + k * interval
local wait = tat - tol - now
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return {k, wait}
)lua";

// KEYS[1]: the grant's day hash {replica: requests reserved}; ARGV: replica,
// its own total so far (restores it after a Redis restart), want, limit,
// expiry. Returns {reserved now, day total of all replicas, replica total}.
constexpr const char* kQuotaScript = R"lua(
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local total = tonumber(ARGV[2])
if total > mine then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); mine = total end
local used = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do used = used + tonumber(v) end
local limit = tonumber(ARGV[4])
local k = tonumber(ARGV[3])
if used + k > limit then k = limit - used end
if k < 0 then k = 0 end
if k > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], k) end
redis.call('EXPIREAT', KEYS[1], ARGV[5])
return {k, used + k, mine + k}
)lua";

// KEYS[1]: the grant's day hash {replica: bytes}; ARGV: replica, its bytes,
// expiry. Returns the other replicas' bytes.
constexpr const char* kBytesScript = R"lua(
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > mine then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); mine = tonumber(ARGV[2]) end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return total - mine
)lua";

// Integers of an array reply, or nothing when it is not one.
bool integers(const net::RedisReply& r, size_t n, std::vector<int64_t>& out) {
  if (r.kind != net::RedisReply::Kind::array || r.elements.size() != n) return false;
  out.clear();
  for (const auto& e : r.elements) {
    if (e.kind != net::RedisReply::Kind::integer) return false;
    out.push_back(e.integer);
  }
  return true;
}

}  // namespace

int64_t rate_batch(const policy::LimitParams& p, uint32_t replicas) noexcept {
  if (!p.has_rate || p.interval_us <= 0) return 0;
  const double rps = 1e6 / static_cast<double>(p.interval_us);
  const double want = std::ceil(rps * 0.1 / std::max<uint32_t>(1, replicas));
  return std::clamp<int64_t>(static_cast<int64_t>(want), 1, std::max<int64_t>(1, p.burst));
}

int64_t quota_batch(const policy::LimitParams& p, uint32_t replicas) noexcept {
  if (p.requests_per_day <= 0) return 0;
  const int64_t n = std::max<uint32_t>(1, replicas);
  return std::clamp<int64_t>((p.requests_per_day + n * 100 - 1) / (n * 100), 1, 10000);
}

LeaseManager::LeaseManager(net::Loop& loop, std::shared_ptr<policy::RateLimiter> limiter,
                           const config::RateLimitsConfig& config, std::string key_prefix, std::string replica_id,
                           OnChange on_change)
    : loop_(loop),
      limiter_(std::move(limiter)),
      config_(config),
      prefix_(std::move(key_prefix)),
      replica_id_(std::move(replica_id)),
      on_change_(std::move(on_change)),
      tick_(loop, [this] { tick(); }),
      reconnect_(loop, [this] { client_->connect(); }) {
  net::RedisClient::Options o;
  o.url = *config_.redis;
  client_ = std::make_unique<net::RedisClient>(
      loop_, o, [this] { on_up(); }, [this](const std::string& e) { on_down(e); });
  status_.redis = config_.redis->display();
  status_.replicas = config_.replicas;
  limiter_->set_replicas(config_.replicas);
}

LeaseManager::~LeaseManager() {
  tick_.stop();
  reconnect_.stop();
  client_.reset();  // no callback after this
}

void LeaseManager::start() {
  // Until the first lease: the degraded mode (no request waits for Redis).
  degraded_mode();
  status_.since_unix_ms = net::Loop::unix_ms();
  client_->connect();
}

void LeaseManager::configure(const config::RateLimitsConfig& config) {
  config_.replicas = config.replicas;
  config_.on_backend_failure = config.on_backend_failure;
  status_.replicas = config.replicas;
  limiter_->set_replicas(config.replicas);
  if (!client_->ready()) degraded_mode();
}

void LeaseManager::degraded_mode() {
  const auto mode = config_.on_backend_failure == config::RateLimitsConfig::OnFailure::reject
                        ? policy::LimitMode::reject
                        : policy::LimitMode::fallback;
  limiter_->set_mode(mode);
  status_.mode = mode;
}

LeaseManager::Status LeaseManager::status() const { return status_; }

int64_t LeaseManager::requests_used_total(const std::string& grant_id) const {
  auto it = grants_.find(grant_id);
  return it == grants_.end() ? -1 : it->second.requests_total;
}

void LeaseManager::on_up() {
  // Connected is not up: a hung server accepts connections too. Up (and
  // shared) once it has answered (tick()).
  ++generation_;
  next_ping_ms_ = 0;
  pinged_ = false;
  for (auto& [id, st] : grants_) {
    GrantState fresh;
    fresh.requests_total = st.requests_total;
    fresh.day = st.day;
    st = fresh;
  }
  // Shared from the first answered lease on: the cells are empty until then,
  // and a request must not be refused for that.
  was_up_ = false;
  tick();
  tick_.start(kTickMs, kTickMs);
}

void LeaseManager::on_down(const std::string& error) {
  ++generation_;
  status_.up = false;
  ++status_.failures;
  status_.last_error = error;
  if (status_.mode == policy::LimitMode::shared || status_.since_unix_ms == 0) status_.since_unix_ms = net::Loop::unix_ms();
  degraded_mode();
  for (auto& [id, st] : grants_) st.rate_in_flight = st.quota_in_flight = st.bytes_in_flight = false;
  tick_.stop();
  if (!reported_down_) {
    reported_down_ = true;
    if (on_change_) on_change_(false, error);
  }
  backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kBackoffMaxMs) : kBackoffFirstMs;
  reconnect_.start(backoff_ms_);
}

void LeaseManager::lease_failed(const std::string& what) { client_->abort(what); }

void LeaseManager::tick() {
  if (!client_->ready()) return;
  const uint64_t now = loop_.now_ms();
  const int64_t day = policy::utc_day(net::Loop::unix_ms());
  const uint32_t replicas = std::max<uint32_t>(1, config_.replicas);
  if (now >= next_ping_ms_) {
    next_ping_ms_ = now + kPingMs;
    const uint64_t gen = generation_;
    client_->command({"PING"}, [this, gen](bool ok, const net::RedisReply&, const std::string&) {
      if (ok && gen == generation_) pinged_ = true;
    });
  }
  const std::vector<policy::LimitedGrant> limited = limiter_->limited_grants();
  for (const policy::LimitedGrant& g : limited) {
    GrantState& st = grants_[g.id];
    (void)replicas;
    if (g.params.has_rate) lease_rate(g, st, now);
    if (g.params.requests_per_day) lease_quota(g, st, day, now);
    if (g.params.bytes_per_day) sync_bytes(g, st, day, now);
  }
  // Shared once every limited grant has had its first answer (or none is limited).
  if (!was_up_ && pinged_) {
    bool all = true;
    for (const policy::LimitedGrant& g : limited) {
      const GrantState& st = grants_[g.id];
      all = all && !st.rate_in_flight && !st.quota_in_flight && !st.bytes_in_flight;
    }
    if (all) {
      was_up_ = true;
      backoff_ms_ = 0;
      status_.up = true;
      status_.last_error.clear();
      limiter_->set_mode(policy::LimitMode::shared);
      status_.mode = policy::LimitMode::shared;
      status_.since_unix_ms = net::Loop::unix_ms();
      reported_down_ = false;
      if (on_change_) on_change_(true, "");
    }
  }
}

void LeaseManager::lease_rate(const policy::LimitedGrant& g, GrantState& st, uint64_t now) {
  if (st.rate_in_flight || now < st.rate_next_ms) return;
  policy::LimitCell& c = *g.cell;
  const int64_t batch = rate_batch(g.params, config_.replicas);
  const int64_t in_hand = c.rate_granted.load() - c.rate_used.load();
  if (in_hand * 2 > batch) return;
  const int64_t want = batch - std::max<int64_t>(0, in_hand);
  const uint64_t gen = generation_;
  st.rate_in_flight = true;
  std::shared_ptr<policy::LimitCell> cell = g.cell;
  const bool sent = client_->command(
      {"EVAL", kRateScript, "1", prefix_ + "rate:" + g.id, std::to_string(g.params.interval_us),
       std::to_string(g.params.tolerance_us), std::to_string(want)},
      [this, gen, id = g.id, cell, want](bool ok, const net::RedisReply& r, const std::string&) {
        if (gen != generation_) return;
        GrantState& s = grants_[id];
        s.rate_in_flight = false;
        if (!ok) return;
        std::vector<int64_t> v;
        if (!integers(r, 2, v) || v[0] < 0 || v[0] > want) {
          lease_failed("rate lease: unexpected answer " + net::to_string(r));
          return;
        }
        ++status_.leases;
        cell->rate_wait_us.store(v[1]);
        if (v[0] > 0) cell->rate_granted.fetch_add(v[0]);
        // Fewer than asked: Redis has no more tokens before `wait`.
        if (v[0] < want) s.rate_next_ms = loop_.now_ms() + std::clamp<int64_t>(v[1] / 1000, 1, 1000);
      });
  if (!sent) st.rate_in_flight = false;
}

void LeaseManager::lease_quota(const policy::LimitedGrant& g, GrantState& st, int64_t day, uint64_t now) {
  policy::LimitCell& c = *g.cell;
  policy::roll_day(c, day);
  if (st.day != day) {
    st.day = day;
    st.requests_total = 0;
    st.quota_next_ms = 0;
    st.quota_synced = false;
  }
  if (st.quota_in_flight || now < st.quota_next_ms) return;
  const int64_t batch = quota_batch(g.params, config_.replicas);
  const int64_t reserved = c.requests_reserved.load();
  const int64_t used = c.requests_used.load();
  // Asked when half the batch is used, and once after a (re)connect to
  // restore this replica's total in Redis.
  if ((reserved - used) * 2 > batch && st.quota_synced) return;
  const int64_t mine = std::max(reserved, used);
  const uint64_t gen = generation_;
  st.quota_in_flight = true;
  std::shared_ptr<policy::LimitCell> cell = g.cell;
  const int64_t limit = g.params.requests_per_day;
  const uint32_t replicas = std::max<uint32_t>(1, config_.replicas);
  const bool sent = client_->command(
      {"EVAL", kQuotaScript, "1", prefix_ + "req:" + g.id + ":" + std::to_string(day), replica_id_,
       std::to_string(mine), std::to_string(batch), std::to_string(limit), std::to_string((day + 2) * 86400)},
      [this, gen, id = g.id, cell, day, batch, limit, replicas](bool ok, const net::RedisReply& r,
                                                                const std::string&) {
        if (gen != generation_) return;
        GrantState& s = grants_[id];
        s.quota_in_flight = false;
        if (!ok) return;
        std::vector<int64_t> v;
        if (!integers(r, 3, v) || v[0] < 0) {
          lease_failed("quota lease: unexpected answer " + net::to_string(r));
          return;
        }
        ++status_.leases;
        if (cell->day.load() != day) return;  // the day ended meanwhile
        s.requests_total = v[1];
        s.quota_synced = true;
        cell->requests_reserved.store(v[2]);
        // Credit: a replica may run ahead of its reservation by a share of
        // what is left that every replica could take at once, so credit
        // never makes the day's total exceed the quota.
        const int64_t left = limit - v[1];
        cell->requests_credit.store(std::clamp<int64_t>(left / replicas, 0, batch));
        if (left <= 0) s.quota_next_ms = loop_.now_ms() + kExhaustedRetryMs;
      });
  if (!sent) st.quota_in_flight = false;
}

void LeaseManager::sync_bytes(const policy::LimitedGrant& g, GrantState& st, int64_t day, uint64_t now) {
  policy::LimitCell& c = *g.cell;
  policy::roll_day(c, day);
  if (st.bytes_in_flight || now < st.bytes_next_ms) return;
  st.bytes_next_ms = now + kBytesSyncMs;
  const uint64_t gen = generation_;
  st.bytes_in_flight = true;
  std::shared_ptr<policy::LimitCell> cell = g.cell;
  const bool sent = client_->command(
      {"EVAL", kBytesScript, "1", prefix_ + "bytes:" + g.id + ":" + std::to_string(day), replica_id_,
       std::to_string(c.bytes_used.load()), std::to_string((day + 2) * 86400)},
      [this, gen, id = g.id, cell, day](bool ok, const net::RedisReply& r, const std::string&) {
        if (gen != generation_) return;
        grants_[id].bytes_in_flight = false;
        if (!ok) return;
        if (r.kind != net::RedisReply::Kind::integer || r.integer < 0) {
          lease_failed("bytes sync: unexpected answer " + net::to_string(r));
          return;
        }
        ++status_.leases;
        if (cell->day.load() == day) cell->bytes_others.store(r.integer);
      });
  if (!sent) st.bytes_in_flight = false;
}

}  // namespace fedproxy::core
