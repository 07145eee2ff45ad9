#include "config/attempt_limiter.hpp"

#include <iterator>

namespace fedproxy::config {

namespace {
// Bounds the table: an attacker with many addresses cannot grow it forever.
constexpr size_t kMaxAddresses = 4096;
}  // namespace

void AttemptLimiter::forget_old(int64_t now_ms) {
  for (auto it = windows_.begin(); it != windows_.end();) {
    it = now_ms - it->second.start_ms >= window_ms_ ? windows_.erase(it) : std::next(it);
  }
}

int64_t AttemptLimiter::retry_after_ms(const std::string& address, int64_t now_ms) {
  auto it = windows_.find(address);
  if (it == windows_.end()) return 0;
  const int64_t elapsed = now_ms - it->second.start_ms;
  if (elapsed >= window_ms_) {
    windows_.erase(it);
    return 0;
  }
  return it->second.failures >= max_failures_ ? window_ms_ - elapsed : 0;
}

void AttemptLimiter::record_failure(const std::string& address, int64_t now_ms) {
  if (windows_.size() >= kMaxAddresses) forget_old(now_ms);
  auto it = windows_.find(address);
  if (it == windows_.end() || now_ms - it->second.start_ms >= window_ms_) {
    if (it == windows_.end() && windows_.size() >= kMaxAddresses) windows_.erase(windows_.begin());
    windows_[address] = Window{now_ms, 1};
    return;
  }
  ++it->second.failures;
}

}  // namespace fedproxy::config
