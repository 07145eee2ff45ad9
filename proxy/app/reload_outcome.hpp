// What a reload's outcome is (SPEC §8, §10): `failed` (the old snapshot
// keeps running), `ok`, or `restart_required`: the new snapshot applies, but
// some changed settings only take effect after a restart, and those keys are
// named (log, /status, metrics, POST /reload) — never a plain success.
//
// restart_required_keys() is pure: it compares the config the running
// process was started with (what its listeners, workers and start-time
// objects were built from) with the new one. Comparing with the start config,
// not the previous reload's, keeps the answer true when a change is reverted.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fedproxy::app {

enum class ReloadResult { ok, failed, restart_required };
inline constexpr std::array<ReloadResult, 3> kReloadResults = {ReloadResult::ok, ReloadResult::failed,
                                                              ReloadResult::restart_required};

// "ok", "failed", "restart_required": the metric label and the JSON value.
const char* to_string(ReloadResult r);

// The config keys whose new value differs from the running one and that do
// not apply before a restart, in a fixed order ("ingress.listen", "workers",
// "timeouts.idle_ms", ...). Empty: everything in `next` applies at once.
std::vector<std::string> restart_required_keys(const config::Config& running, const config::Config& next);

// The tally /metrics and /status show (kept by the Runtime on the main loop).
struct ReloadStats {
  std::array<uint64_t, kReloadResults.size()> counts{};  // indexed by ReloadResult
  int64_t last_success_unix = 0;  // start, then every reload whose snapshot applied (ok or restart_required)
  ReloadResult last_result = ReloadResult::ok;
  // Keys still waiting for a restart, from the last reload that applied.
  std::vector<std::string> pending_restart_keys;

  void record(ReloadResult r, int64_t now_unix, std::vector<std::string> restart_keys);
};

}  // namespace fedproxy::app
