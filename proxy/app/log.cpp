#include "proxy/app/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "config/json.hpp"

namespace fedproxy::app {

std::string utc_timestamp(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string utc_timestamp_now() {
  auto now = std::chrono::system_clock::now();
  return utc_timestamp(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
}

namespace {
// debug 0, info 1, warn 2, error 3, fatal (and anything unknown) 4: a line
// with a level nobody listed is never dropped.
int level_rank(std::string_view level) {
  if (level == "debug") return 0;
  if (level == "info") return 1;
  if (level == "warn") return 2;
  if (level == "error") return 3;
  return 4;
}
// Written once before any other thread starts, read by all of them.
std::atomic<int> g_min_rank{1};
}  // namespace

bool set_log_level(std::string_view level) {
  if (level != "debug" && level != "info" && level != "warn" && level != "error") return false;
  g_min_rank.store(level_rank(level), std::memory_order_relaxed);
  return true;
}

LogLine::LogLine(std::string_view level, std::string_view msg)
    : urgent_(level != "info" && level != "debug"),
      dropped_(level_rank(level) < g_min_rank.load(std::memory_order_relaxed)) {
  if (dropped_) return;
  buf_.reserve(256);
  buf_ += "{\"ts\":\"";
  buf_ += utc_timestamp_now();
  buf_ += "\",\"level\":\"";
  buf_ += level;
  buf_ += "\",\"msg\":\"";
  config::json::append_escaped(buf_, msg);
  buf_ += '"';
}

namespace {
struct LogBatch {
  bool on = false;
  std::string lines;
};
thread_local LogBatch t_batch;
constexpr size_t kBatchLimit = 64 * 1024;

// One fwrite per line or batch of whole lines, so concurrent writers (worker
// threads) never interleave within a line.
void write_out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

void begin_log_batching() { t_batch.on = true; }

void flush_log_batch() {
  if (t_batch.lines.empty()) return;
  write_out(t_batch.lines);
  t_batch.lines.clear();
}

void end_log_batching() {
  flush_log_batch();
  t_batch.on = false;
}

LogLine::~LogLine() {
  if (dropped_) return;
  buf_ += "}\n";
  if (!t_batch.on || urgent_) {
    flush_log_batch();
    write_out(buf_);
    return;
  }
  t_batch.lines += buf_;
  if (t_batch.lines.size() >= kBatchLimit) flush_log_batch();
}

LogLine& LogLine::str(std::string_view key, std::string_view value) {
  if (dropped_) return *this;
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":\"";
  config::json::append_escaped(buf_, value);
  buf_ += '"';
  return *this;
}

LogLine& LogLine::num(std::string_view key, int64_t value) {
  if (dropped_) return *this;
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += std::to_string(value);
  return *this;
}

LogLine& LogLine::real(std::string_view key, double value) {
  if (dropped_) return *this;
  char tmp[32];
  std::snprintf(tmp, sizeof(tmp), "%.3f", value);
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += tmp;
  return *this;
}

LogLine& LogLine::boolean(std::string_view key, bool value) {
  if (dropped_) return *this;
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += value ? "true" : "false";
  return *this;
}

}  // namespace fedproxy::app
