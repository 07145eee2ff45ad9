// Failed join attempts per source address (SPEC §13): a fixed window per
// address; past `max_failures` failures in the window the address is
// refused (429) until the window ends. Pure: the caller passes the time.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace fedproxy::config {

class AttemptLimiter {
 public:
  AttemptLimiter(int max_failures, int64_t window_ms) : max_failures_(max_failures), window_ms_(window_ms) {}
  // 0 when the address may try now, else the milliseconds until it may.
  int64_t retry_after_ms(const std::string& address, int64_t now_ms);
  void record_failure(const std::string& address, int64_t now_ms);

 private:
  struct Window {
    int64_t start_ms = 0;
    int failures = 0;
  };
  void forget_old(int64_t now_ms);
  int max_failures_;
  int64_t window_ms_;
  std::map<std::string, Window> windows_;
};

}  // namespace fedproxy::config
