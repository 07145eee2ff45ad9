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

LogLine::LogLine(std::string_view level, std::string_view msg) {
  buf_.reserve(256);
  buf_ += "{\"ts\":\"";
  buf_ += utc_timestamp_now();
  buf_ += "\",\"level\":\"";
  buf_ += level;
  buf_ += "\",\"msg\":\"";
  buf_ += http1::json_escape(msg);
  buf_ += '"';
}

LogLine::~LogLine() {
  buf_ += "}\n";
  // One write per line so concurrent writers never interleave within a line.
  std::fwrite(buf_.data(), 1, buf_.size(), stderr);
  std::fflush(stderr);
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
