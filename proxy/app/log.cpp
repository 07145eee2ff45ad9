#include "proxy/app/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

#include "proxy/http1/serializer.hpp"

namespace fedproxy::app {

std::string utc_timestamp_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

LogLine::LogLine(std::string_view level, std::string_view msg) : urgent_(level != "info") {
  buf_.reserve(256);
  buf_ += "{\"ts\":\"";
  buf_ += utc_timestamp_now();
  buf_ += "\",\"level\":\"";
  buf_ += level;
  buf_ += "\",\"msg\":\"";
  buf_ += http1::json_escape(msg);
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
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":\"";
  buf_ += http1::json_escape(value);
  buf_ += '"';
  return *this;
}

LogLine& LogLine::num(std::string_view key, int64_t value) {
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += std::to_string(value);
  return *this;
}

LogLine& LogLine::real(std::string_view key, double value) {
  char tmp[32];
  std::snprintf(tmp, sizeof(tmp), "%.3f", value);
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += tmp;
  return *this;
}

LogLine& LogLine::boolean(std::string_view key, bool value) {
  buf_ += ",\"";
  buf_ += key;
  buf_ += "\":";
  buf_ += value ? "true" : "false";
  return *this;
}

}  // namespace fedproxy::app
