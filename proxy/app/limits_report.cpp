#include "proxy/app/limits_report.hpp"

#include <vector>

#include "config/json.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/prom_text.hpp"

namespace fedproxy::app {

namespace {

struct QuotaUse {
  std::string grant;
  int64_t requests_limit = 0, requests_used = 0;
  int64_t bytes_limit = 0, bytes_used = 0;
};

// The day's use: across replicas when shared (as last known), else this
// process's own count.
std::vector<QuotaUse> quota_use(const policy::RateLimiter& limiter, const core::LeaseManager* leases,
                                int64_t now_unix_ms) {
  std::vector<QuotaUse> out;
  const int64_t today = policy::utc_day(now_unix_ms);
  const bool shared = limiter.mode() != policy::LimitMode::local;
  for (const policy::LimitedGrant& g : limiter.limited_grants()) {
    if (!g.params.requests_per_day && !g.params.bytes_per_day) continue;
    const policy::LimitCell& c = *g.cell;
    const bool current = c.day.load() == today;
    QuotaUse q{g.id, g.params.requests_per_day, 0, g.params.bytes_per_day, 0};
    if (current) {
      q.requests_used = c.requests_used.load();
      q.bytes_used = c.bytes_used.load() + (shared ? c.bytes_others.load() : 0);
      if (leases && g.params.requests_per_day) {
        // The others' share is what Redis counted beyond this replica's reservation.
        const int64_t total = leases->requests_used_total(g.id);
        if (total >= 0) q.requests_used += std::max<int64_t>(0, total - c.requests_reserved.load());
      }
    }
    out.push_back(std::move(q));
  }
  return out;
}

std::string limit_or_null(int64_t v) { return v ? std::to_string(v) : std::string("null"); }

}  // namespace

std::string limits_status_json(const policy::RateLimiter& limiter, const core::LeaseManager* leases,
                               int64_t now_unix_ms) {
  namespace json = config::json;
  std::string j = "\"rate_limits\":{";
  if (leases) {
    const core::LeaseManager::Status s = leases->status();
    j += "\"backend\":\"redis\",\"state\":" + json::quote(policy::to_string(limiter.mode())) +
         ",\"redis\":" + json::quote(s.redis) + ",\"up\":" + (s.up ? "true" : "false") +
         ",\"replicas\":" + std::to_string(limiter.replicas()) +
         ",\"since\":" + (s.since_unix_ms ? json::quote(utc_timestamp(s.since_unix_ms)) : std::string("null")) +
         ",\"last_error\":" + (s.last_error.empty() ? std::string("null") : json::quote(s.last_error)) +
         ",\"failures\":" + std::to_string(s.failures) + ",\"leases\":" + std::to_string(s.leases);
  } else {
    j += "\"backend\":\"local\",\"state\":\"local\",\"replicas\":" + std::to_string(limiter.replicas());
  }
  j += "},\"quotas\":[";
  const std::string day = utc_timestamp(policy::utc_day(now_unix_ms) * 86400000).substr(0, 10);
  bool first = true;
  for (const QuotaUse& q : quota_use(limiter, leases, now_unix_ms)) {
    j += first ? "{" : ",{";
    first = false;
    j += "\"grant\":" + json::quote(q.grant) + ",\"day\":" + json::quote(day) +
         ",\"requests_per_day\":" + limit_or_null(q.requests_limit) +
         ",\"requests_used\":" + std::to_string(q.requests_used) +
         ",\"bytes_per_day\":" + limit_or_null(q.bytes_limit) + ",\"bytes_used\":" + std::to_string(q.bytes_used) +
         "}";
  }
  return j + "]";
}

std::string limits_metrics_text(const policy::RateLimiter& limiter, const core::LeaseManager* leases,
                                int64_t now_unix_ms) {
  std::string out;
  const policy::LimitMode mode = limiter.mode();
  prom::family(out, "fedproxy_rate_limit_state", "gauge",
               "1 for where rate limits and quotas are decided now: local (this process), shared (Redis), "
               "fallback (Redis unreachable: limit / rate_limits.replicas here), reject (unreachable: 503).");
  for (policy::LimitMode m : {policy::LimitMode::local, policy::LimitMode::shared, policy::LimitMode::fallback,
                              policy::LimitMode::reject}) {
    prom::sample(out, "fedproxy_rate_limit_state", {{"state", policy::to_string(m)}}, uint64_t{m == mode ? 1u : 0u});
  }
  if (leases) {
    const core::LeaseManager::Status s = leases->status();
    prom::family(out, "fedproxy_rate_limit_backend_up", "gauge",
                 "1 while the Redis/Valkey of rate_limits.redis_url answers, 0 while it does not.");
    prom::sample(out, "fedproxy_rate_limit_backend_up", {}, uint64_t{s.up ? 1u : 0u});
    prom::family(out, "fedproxy_rate_limit_backend_failures_total", "counter",
                 "Connections to the rate-limit backend that failed or timed out.");
    prom::sample(out, "fedproxy_rate_limit_backend_failures_total", {}, s.failures);
    prom::family(out, "fedproxy_rate_limit_leases_total", "counter",
                 "Lease and sync scripts the rate-limit backend answered (token batches, quota reservations, "
                 "byte counts).");
    prom::sample(out, "fedproxy_rate_limit_leases_total", {}, s.leases);
  }
  const std::vector<QuotaUse> quotas = quota_use(limiter, leases, now_unix_ms);
  if (!quotas.empty()) {
    prom::family(out, "fedproxy_quota_used", "gauge",
                 "Use of a grant's daily quota today (UTC), across replicas when shared.");
    for (const QuotaUse& q : quotas) {
      if (q.requests_limit) prom::sample(out, "fedproxy_quota_used", {{"grant", q.grant}, {"kind", "requests"}},
                                         static_cast<uint64_t>(q.requests_used));
      if (q.bytes_limit) prom::sample(out, "fedproxy_quota_used", {{"grant", q.grant}, {"kind", "bytes"}},
                                      static_cast<uint64_t>(q.bytes_used));
    }
    prom::family(out, "fedproxy_quota_limit", "gauge", "A grant's daily quota (requests_per_day, bytes_per_day).");
    for (const QuotaUse& q : quotas) {
      if (q.requests_limit) prom::sample(out, "fedproxy_quota_limit", {{"grant", q.grant}, {"kind", "requests"}},
                                         static_cast<uint64_t>(q.requests_limit));
      if (q.bytes_limit) prom::sample(out, "fedproxy_quota_limit", {{"grant", q.grant}, {"kind", "bytes"}},
                                      static_cast<uint64_t>(q.bytes_limit));
    }
  }
  return out;
}

}  // namespace fedproxy::app
