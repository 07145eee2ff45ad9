// Structured logs: one JSON object per line on stderr (SPEC §10).
//   LogLine("info", "listening").str("listener", "ingress").str("address", a);
// The line is written when the LogLine goes out of scope.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fedproxy::app {

// Lines below this level are not written: "debug", "info" (the default),
// "warn", "error". "fatal" lines are always written. False for another word.
// Set once at start, before any thread logs.
bool set_log_level(std::string_view level);

class LogLine {
 public:
  LogLine(std::string_view level, std::string_view msg);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  LogLine& str(std::string_view key, std::string_view value);
  LogLine& num(std::string_view key, int64_t value);
  LogLine& real(std::string_view key, double value);
  LogLine& boolean(std::string_view key, bool value);

 private:
  std::string buf_;
  bool urgent_;
  bool dropped_;  // below the log level: nothing is built or written  // not "info": written at once even when batching
};

// Batching (per thread, for event-loop threads): info lines are gathered and
// written with one fwrite when flush_log_batch() runs, which the loop does
// once per iteration; warn/error/fatal lines flush the batch and go out at
// once. Saves a write(2) per request under load.
void begin_log_batching();
void flush_log_batch();
void end_log_batching();  // flushes

// RFC 3339 UTC timestamp with milliseconds (of a Unix time in ms, or now).
std::string utc_timestamp(int64_t unix_ms);
std::string utc_timestamp_now();

}  // namespace fedproxy::app
