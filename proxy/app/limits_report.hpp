// What /status and /metrics say about rate limits and quotas (SPEC §14):
// where limits are decided now (local, shared, fallback, reject), the
// Redis connection, and each grant's use of its daily quota.
#pragma once

#include <cstdint>
#include <string>

#include "policy/policy.hpp"
#include "proxy/core/lease_manager.hpp"

namespace fedproxy::app {

// leases: null with backend local.
std::string limits_status_json(const policy::RateLimiter& limiter, const core::LeaseManager* leases,
                               int64_t now_unix_ms);   // "rate_limits":{...},"quotas":[...]
std::string limits_metrics_text(const policy::RateLimiter& limiter, const core::LeaseManager* leases,
                                int64_t now_unix_ms);

}  // namespace fedproxy::app
