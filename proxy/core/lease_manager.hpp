// Keeps the limiter's cells supplied from Redis/Valkey (SPEC §14), so that
// every replica of a node shares each grant's rate limit and quotas while no
// request ever waits on Redis:
//
// - Rate: Redis holds one GCRA cell per grant (the same algorithm as the
//   local bucket, on Redis' clock). Each replica leases tokens from it in
//   batches of about rps × 100 ms / replicas and tops its batch up when half
//   of it is used (every 10 ms tick). A request takes a leased token or is
//   refused (429) at once.
// - Requests per day: each replica reserves batches of the day's count in a
//   hash of per-replica totals, and may run one batch ahead of its
//   reservation (credit) until Redis says the day is used up.
// - Bytes per day: each replica publishes its day's byte count every 100 ms
//   and reads the others' sum.
// - Each script is one EVAL: atomic in Redis, so concurrent replicas never
//   hand out the same token twice.
// - A failed connect, an error, or no answer within 100 ms: the limiter
//   falls back (local buckets of limit / replicas, or 503 with
//   on_backend_failure reject) and the manager reconnects with backoff
//   (0.2 s doubling to 5 s). Reported once per transition.
// - Redis restarted (its data lost): rate cells start full again (at most one
//   window lost); quota totals come back from the replicas, which send their
//   own day's count with every lease (Redis keeps the larger).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "policy/policy.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/net/redis_client.hpp"

namespace fedproxy::core {

// The lease sizes (pure): how many rate tokens a replica keeps at hand, and
// how many requests of a daily quota it reserves at once.
int64_t rate_batch(const policy::LimitParams& p, uint32_t replicas) noexcept;
int64_t quota_batch(const policy::LimitParams& p, uint32_t replicas) noexcept;

class LeaseManager {
 public:
  struct Status {
    policy::LimitMode mode = policy::LimitMode::local;
    std::string redis;        // host:port/db
    uint32_t replicas = 1;
    bool up = false;
    int64_t since_unix_ms = 0;  // of the current state
    std::string last_error;
    uint64_t failures = 0;      // connection failures and timeouts
    uint64_t leases = 0;        // lease scripts answered
  };
  // Events for the log (once per transition) and the audit trail.
  using OnChange = std::function<void(bool up, const std::string& error)>;

  // key_prefix: the node's namespace in Redis ("fedproxy:<entity_uri>:").
  LeaseManager(net::Loop& loop, std::shared_ptr<policy::RateLimiter> limiter, const config::RateLimitsConfig& config,
               std::string key_prefix, std::string replica_id, OnChange on_change);
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  void start();
  // A reload: replicas and on_backend_failure apply now; a new redis_url
  // or backend needs a restart (the caller reports that).
  void configure(const config::RateLimitsConfig& config);
  Status status() const;
  // The day's totals across replicas as last known (shared), for /status.
  int64_t requests_used_total(const std::string& grant_id) const;

 private:
  struct GrantState {
    bool rate_in_flight = false;
    bool quota_in_flight = false;
    bool bytes_in_flight = false;
    uint64_t rate_next_ms = 0;   // loop time before which no rate lease is asked (Redis said: no tokens yet)
    uint64_t quota_next_ms = 0;
    uint64_t bytes_next_ms = 0;
    bool quota_synced = false;   // this connection has sent this replica's day total
    int64_t requests_total = 0;  // across replicas, from the last quota lease
    int64_t day = -1;
  };
  void on_up();
  void on_down(const std::string& error);
  void tick();
  void lease_rate(const policy::LimitedGrant& g, GrantState& st, uint64_t now);
  void lease_quota(const policy::LimitedGrant& g, GrantState& st, int64_t day, uint64_t now);
  void sync_bytes(const policy::LimitedGrant& g, GrantState& st, int64_t day, uint64_t now);
  void degraded_mode();
  // A lease answered with an error or nonsense: treat the backend as down.
  void lease_failed(const std::string& what);

  net::Loop& loop_;
  std::shared_ptr<policy::RateLimiter> limiter_;
  config::RateLimitsConfig config_;
  std::string prefix_;
  std::string replica_id_;
  OnChange on_change_;
  std::unique_ptr<net::RedisClient> client_;
  net::Timer tick_;
  net::Timer reconnect_;
  uint64_t backoff_ms_ = 0;
  bool was_up_ = false;        // reported up since the last down
  bool reported_down_ = false; // the down state was reported (once per outage)
  std::map<std::string, GrantState> grants_;
  Status status_;
  uint64_t next_ping_ms_ = 0;  // loop time of the next health PING
  bool pinged_ = false;        // this connection has answered a PING
  uint64_t generation_ = 0;    // bumped at each connection: late replies of an older one are ignored
};

}  // namespace fedproxy::core
