// Test helpers: sinks that record events, and drivers that feed a byte string
// in pieces of a given size, resuming after every pause the way a session does.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/request_parser.hpp"
#include "proxy/http1/response_parser.hpp"

namespace http1_test {

using namespace fedproxy::http1;

// Events as strings; consecutive body pieces are merged so that results do
// not depend on how the input was split.
struct EventLog {
  std::vector<std::string> events;
  void add(std::string e) { events.push_back(std::move(e)); }
  void add_body(const char* data, size_t len) {
    if (!events.empty() && events.back().rfind("body:", 0) == 0)
      events.back().append(data, len);
    else
      events.push_back("body:" + std::string(data, len));
  }
};

struct RequestRecorder : RequestSink {
  EventLog log;
  std::vector<RequestHead> heads;
  void on_request_head(RequestHead&& head) override {
    log.add("head:" + head.method + " " + head.target);
    heads.push_back(std::move(head));
  }
  void on_request_body(const char* data, size_t len) override { log.add_body(data, len); }
  void on_request_complete() override { log.add("complete"); }
};

struct ResponseRecorder : ResponseSink {
  EventLog log;
  std::vector<ResponseHead> heads;
  void on_response_head(ResponseHead&& head) override {
    log.add("head:" + std::to_string(head.status));
    heads.push_back(std::move(head));
  }
  void on_response_body(const char* data, size_t len) override { log.add_body(data, len); }
  void on_response_complete() override { log.add("complete"); }
};

struct RequestRun {
  std::vector<std::string> events;  // sink events plus "pause" after each stop
  std::vector<RequestHead> heads;
  ParseError error = ParseError::none;
  std::string detail;
  size_t consumed = 0;
  bool stalled = false;  // feed consumed less than offered without pause or error
};

// Feed `input` in pieces of `step` bytes (0 = all at once), or of the sizes
// `next_step()` returns.
template <typename NextStep>
RequestRun run_request_with(std::string_view input, NextStep next_step, const ParserLimits& limits = {});

inline RequestRun run_request(std::string_view input, size_t step, const ParserLimits& limits = {}) {
  return run_request_with(input, [step] { return step; }, limits);
}

template <typename NextStep>
RequestRun run_request_with(std::string_view input, NextStep next_step, const ParserLimits& limits) {
  RequestRecorder rec;
  RequestParser parser(limits, rec);
  RequestRun r;
  size_t off = 0;
  while (off < input.size()) {
    const size_t step = next_step();
    const size_t n = step == 0 ? input.size() - off : std::min(step, input.size() - off);
    const size_t c = parser.feed(input.data() + off, n);
    off += c;
    if (parser.error() != ParseError::none) break;
    if (parser.paused()) {
      rec.log.add("pause");
      parser.resume();
      continue;
    }
    if (c != n) {
      r.stalled = true;
      break;
    }
  }
  r.events = rec.log.events;
  r.heads = std::move(rec.heads);
  r.error = parser.error();
  r.detail = parser.error_detail();
  r.consumed = off;
  return r;
}

struct ResponseRun {
  std::vector<std::string> events;
  std::vector<ResponseHead> heads;
  bool failed = false;
  bool finish_ok = false;
  size_t consumed = 0;
  bool stalled = false;
};

// Feed responses; `methods` lists the request method each response answers
// (expect_response_to is called before each one). finish() is called at EOF.
inline ResponseRun run_response(std::string_view input, size_t step,
                                std::vector<std::string> methods = {},
                                size_t max_header_bytes = 65536) {
  ResponseRecorder rec;
  ResponseParser parser(rec, max_header_bytes);
  ResponseRun r;
  size_t next_method = 0;
  auto announce = [&] {
    parser.expect_response_to(next_method < methods.size() ? methods[next_method] : "GET");
    ++next_method;
  };
  announce();
  size_t off = 0;
  while (off < input.size()) {
    const size_t n = step == 0 ? input.size() - off : std::min(step, input.size() - off);
    const size_t c = parser.feed(input.data() + off, n);
    off += c;
    if (parser.failed()) break;
    if (parser.paused()) {
      rec.log.add("pause");
      announce();
      parser.resume();
      continue;
    }
    if (c != n) {
      r.stalled = true;
      break;
    }
  }
  r.failed = parser.failed();  // parse failure, before EOF handling
  if (!parser.failed()) {
    r.finish_ok = parser.finish();
    if (r.finish_ok) rec.log.add("eof");
  }
  r.events = rec.log.events;
  r.heads = std::move(rec.heads);
  r.consumed = off;
  return r;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) {
    if (!s.empty()) s += " | ";
    s += e;
  }
  return s;
}

}  // namespace http1_test
