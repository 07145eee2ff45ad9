#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "driver.hpp"

using namespace http1_test;
using namespace std::string_literals;
using fedproxy::http1::ParseError;

namespace {

const char* name_of(ParseError e) {
  switch (e) {
    case ParseError::none: return "none";
    case ParseError::bad_request: return "bad_request";
    case ParseError::uri_too_long: return "uri_too_long";
    case ParseError::headers_too_large: return "headers_too_large";
  }
  return "?";
}

struct Case {
  const char* name;
  std::string input;
  ParseError error;
  // Expected events, joined with " | ". For errors: what was delivered before
  // the error ("" = nothing at all, in particular no head).
  std::string events;
};

std::string many_headers(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "X-H" + std::to_string(i) + ": v\r\n";
  return s;
}

const std::string kChunkedPost = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

std::vector<Case> table() {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  return {
      // ---- valid -------------------------------------------------------
      {"simple GET", req + "\r\n", ParseError::none, "head:GET / | complete | pause"},
      {"POST with Content-Length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
       ParseError::none, "head:POST /p | body:hello | complete | pause"},
      {"chunked with extension and trailer", kChunkedPost + "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
       ParseError::none, "head:POST /u | body:hello0123456789 | complete | pause"},
      {"Transfer-Encoding is case-insensitive", "POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n",
       ParseError::none, "head:POST / | body:x | complete | pause"},
      {"absolute-form target", "GET http://peer/api?x=1 HTTP/1.1\r\nHost: peer\r\n\r\n", ParseError::none,
       "head:GET http://peer/api?x=1 | complete | pause"},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::none, "head:OPTIONS * | complete | pause"},
      {"empty lines before the request", "\r\n\r\n" + req + "\r\n", ParseError::none,
       "head:GET / | complete | pause"},
      {"HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n", ParseError::none, "head:GET /old | complete | pause"},
      {"HTAB and obs-text in a value", req + "X-A: a\tb\xff\r\n\r\n", ParseError::none,
       "head:GET / | complete | pause"},
      {"upgrade request is a plain request", req + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
       ParseError::none, "head:GET / | complete | pause | head:GET /next | complete | pause"},
      {"upgrade request with body: body is not a request",
       "POST / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent-Length: 21\r\n\r\nGET /admin HTTP/1.1\r\n",
       ParseError::none, "head:POST / | body:GET /admin HTTP/1.1\r\n | complete | pause"},
      {"100 header fields (the limit)", "GET / HTTP/1.1\r\n" + many_headers(100) + "\r\n", ParseError::none,
       "head:GET / | complete | pause"},
      // ---- ambiguous framing --------------------------------------------
      {"CL then TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE then CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"duplicate CL, same value", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
       ParseError::bad_request, ""},
      {"duplicate CL, different values", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
       ParseError::bad_request, ""},
      {"CL list", "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", ParseError::bad_request, ""},
      {"TE gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE chunked, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ParseError::bad_request, ""},
      {"TE identity", "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", ParseError::bad_request, ""},
      {"TE empty", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", ParseError::bad_request, ""},
      {"TE xchunked", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", ParseError::bad_request, ""},
      {"TE chunked with trailing space", "POST / HTTP/1.1\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE chunked with tabs", "POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked\t\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE chunked twice (two fields)",
       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::bad_request, ""},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ParseError::bad_request, ""},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::bad_request, ""},
      // ---- line syntax ------------------------------------------------------
      {"obs-fold with SP", req + "X-A: a\r\n b\r\n\r\n", ParseError::bad_request, ""},
      {"obs-fold with HTAB", req + "X-A: a\r\n\tb\r\n\r\n", ParseError::bad_request, ""},
      {"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::bad_request, ""},
      {"bare LF after header", req + "X-A: a\n\r\n", ParseError::bad_request, ""},
      {"bare LF ending the head", req + "\n", ParseError::bad_request, ""},
      {"bare CR in value", req + "X-A: a\rb\r\n\r\n", ParseError::bad_request, ""},
      {"NUL in value", req + "X-A: a\0b\r\n\r\n"s, ParseError::bad_request, ""},
      {"NUL in name", req + "X\0A: ab\r\n\r\n"s, ParseError::bad_request, ""},
      {"SOH in value", req + "X-A: a\x01z\r\n\r\n", ParseError::bad_request, ""},
      {"ESC in value", req + "X-A: a\x1bz\r\n\r\n", ParseError::bad_request, ""},
      {"VT in value", req + "X-A: a\x0bz\r\n\r\n", ParseError::bad_request, ""},
      {"DEL in value", req + "X-A: a\x7fz\r\n\r\n", ParseError::bad_request, ""},
      {"space in header name", req + "X A: b\r\n\r\n", ParseError::bad_request, ""},
      {"space before colon", req + "Host : b\r\n\r\n", ParseError::bad_request, ""},
      {"separator in header name", req + "X(A): b\r\n\r\n", ParseError::bad_request, ""},
      {"empty header name", req + ": b\r\n\r\n", ParseError::bad_request, ""},
      {"control byte in target", "GET /a\x01z HTTP/1.1\r\n\r\n", ParseError::bad_request, ""},
      {"lower-case method", "get / HTTP/1.1\r\n\r\n", ParseError::bad_request, ""},
      {"unknown method", "FOO / HTTP/1.1\r\n\r\n", ParseError::bad_request, ""},
      // ---- versions and methods --------------------------------------------
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::bad_request, ""},
      {"HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", ParseError::bad_request, ""},
      {"HTTP/0.9 simple request", "GET /\r\n\r\n", ParseError::bad_request, ""},
      {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", ParseError::bad_request, ""},
      {"HTTP/3.0", "GET / HTTP/3.0\r\n\r\n", ParseError::bad_request, ""},
      {"RTSP protocol", "GET / RTSP/1.0\r\n\r\n", ParseError::bad_request, ""},
      {"ICE protocol", "SOURCE / ICE/1.0\r\n\r\n", ParseError::bad_request, ""},
      {"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseError::bad_request, ""},
      {"CONNECT", "CONNECT peer:443 HTTP/1.1\r\nHost: peer:443\r\n\r\n", ParseError::bad_request, ""},
      // ---- Content-Length values -------------------------------------------
      {"CL with plus sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", ParseError::bad_request, ""},
      {"CL negative", "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\nhello", ParseError::bad_request, ""},
      {"CL not a number", "POST / HTTP/1.1\r\nContent-Length: 5a\r\n\r\nhello", ParseError::bad_request, ""},
      {"CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello", ParseError::bad_request, ""},
      {"CL empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", ParseError::bad_request, ""},
      {"CL overflow", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", ParseError::bad_request, ""},
      {"CL above INT64_MAX", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
       ParseError::bad_request, ""},
      // ---- chunk sizes (the head was valid and is delivered) -----------------
      {"chunk size not hex", kChunkedPost + "zz\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk size negative", kChunkedPost + "-1\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk size 0x prefix", kChunkedPost + "0x5\r\nhello\r\n0\r\n\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk size overflow", kChunkedPost + "10000000000000001\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk size with trailing space", kChunkedPost + "5 \r\nhello\r\n0\r\n\r\n", ParseError::bad_request,
       "head:POST /u"},
      {"chunk size empty", kChunkedPost + "\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk size bare LF", kChunkedPost + "5\nhello\r\n0\r\n\r\n", ParseError::bad_request, "head:POST /u"},
      {"chunk extension junk", kChunkedPost + "5;\x01\r\nhello\r\n0\r\n\r\n", ParseError::bad_request,
       "head:POST /u"},
      {"chunk data not followed by CRLF", kChunkedPost + "5\r\nhelloXX0\r\n\r\n", ParseError::bad_request,
       "head:POST /u | body:hello"},
      {"chunk data followed by bare LF", kChunkedPost + "5\r\nhello\n0\r\n\r\n", ParseError::bad_request,
       "head:POST /u | body:hello"},
      // ---- limits -----------------------------------------------------------
      {"request line over 8 KiB", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", ParseError::uri_too_long,
       ""},
      {"header value over 16 KiB", req + "X-Big: " + std::string(17000, 'b') + "\r\n\r\n",
       ParseError::headers_too_large, ""},
      {"header name over 16 KiB", req + std::string(17000, 'N') + ": v\r\n\r\n", ParseError::headers_too_large, ""},
      {"101 header fields", "GET / HTTP/1.1\r\n" + many_headers(101) + "\r\n", ParseError::headers_too_large, ""},
  };
}

void check_case(const Case& c, size_t step) {
  CAPTURE(step);
  const RequestRun r = run_request(c.input, step);
  CHECK_MESSAGE(r.error == c.error, "got ", name_of(r.error), " (", r.detail, ")");
  CHECK(join(r.events) == c.events);
  CHECK_FALSE(r.stalled);
  if (c.error == ParseError::none) CHECK(r.consumed == c.input.size());
}

}  // namespace

TEST_CASE("request table: one piece, byte by byte, odd pieces: identical results") {
  for (const Case& c : table()) {
    CAPTURE(c.name);
    check_case(c, 0);
    check_case(c, 1);
    check_case(c, 7);
    const RequestRun whole = run_request(c.input, 0);
    const RequestRun bytes = run_request(c.input, 1);
    CHECK(whole.events == bytes.events);
    CHECK(whole.error == bytes.error);
  }
}

TEST_CASE("request table: random splits give the same results as one piece") {
  std::mt19937 rng(20240611);
  for (const Case& c : table()) {
    CAPTURE(c.name);
    const RequestRun whole = run_request(c.input, 0);
    for (int round = 0; round < 8; ++round) {
      CAPTURE(round);
      std::uniform_int_distribution<size_t> size(1, round < 4 ? 4 : 64);
      const RequestRun split = run_request_with(c.input, [&] { return size(rng); });
      CHECK(split.events == whole.events);
      CHECK(split.error == whole.error);
      CHECK_FALSE(split.stalled);
    }
  }
}

TEST_CASE("request head fields") {
  const std::string in =
      "POST /api/v1/tasks?x=1 HTTP/1.1\r\n"
      "Host:   peer.example  \r\n"
      "X-Empty:\r\n"
      "X-Tabbed:\t a b \t\r\n"
      "Expect: 100-Continue\r\n"
      "Content-Length: 0003\r\n\r\nabc";
  for (size_t step : {size_t{0}, size_t{1}}) {
    CAPTURE(step);
    const RequestRun r = run_request(in, step);
    REQUIRE(r.error == ParseError::none);
    REQUIRE(r.heads.size() == 1);
    const RequestHead& h = r.heads[0];
    CHECK(h.method == "POST");
    CHECK(h.target == "/api/v1/tasks?x=1");
    CHECK(h.version_minor == 1);
    CHECK(h.keep_alive);
    CHECK(h.body == BodyKind::content_length);
    CHECK(h.content_length == 3);
    CHECK(h.expect_continue);
    REQUIRE(h.headers.size() == 5);
    CHECK(h.headers[0].name == "Host");
    CHECK(h.headers[0].value == "peer.example");
    CHECK(h.headers[1].name == "X-Empty");
    CHECK(h.headers[1].value == "");
    CHECK(h.headers[2].value == "a b");
    CHECK(h.headers[4].name == "Content-Length");
    CHECK(h.headers[4].value == "0003");
    CHECK(join(r.events) == "head:POST /api/v1/tasks?x=1 | body:abc | complete | pause");
  }
}

TEST_CASE("body kind, keep-alive and Expect") {
  struct K {
    std::string in;
    BodyKind body;
    uint64_t length;
    bool keep_alive;
    bool expect;
  };
  const std::vector<K> cases = {
      {"GET / HTTP/1.1\r\n\r\n", BodyKind::none, 0, true, false},
      {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", BodyKind::none, 0, true, false},
      {"POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n1234567", BodyKind::content_length, 7, true, false},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BodyKind::chunked, 0, true, false},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", BodyKind::none, 0, false, false},
      {"GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n", BodyKind::none, 0, false, false},
      {"GET / HTTP/1.0\r\n\r\n", BodyKind::none, 0, false, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", BodyKind::none, 0, true, false},
      {"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", BodyKind::content_length, 1, true,
       true},
      {"PUT / HTTP/1.1\r\nExpect: 100-continue-not\r\nContent-Length: 1\r\n\r\nx", BodyKind::content_length, 1,
       true, false},
      // RFC 9110 10.1.1: ignore 100-continue in an HTTP/1.0 request.
      {"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", BodyKind::content_length, 1,
       false, false},
  };
  for (const K& k : cases) {
    CAPTURE(k.in);
    const RequestRun r = run_request(k.in, 0);
    REQUIRE(r.error == ParseError::none);
    REQUIRE(r.heads.size() == 1);
    CHECK(r.heads[0].body == k.body);
    CHECK(r.heads[0].content_length == k.length);
    CHECK(r.heads[0].keep_alive == k.keep_alive);
    CHECK(r.heads[0].expect_continue == k.expect);
  }
  const RequestRun r10 = run_request("GET / HTTP/1.0\r\n\r\n", 0);
  REQUIRE(r10.heads.size() == 1);
  CHECK(r10.heads[0].version_minor == 0);
}

TEST_CASE("pipelining: pause after each request, resume, events in order") {
  const std::string a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string b = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  const std::string c = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  const std::string all = a + b + c;

  RequestRecorder rec;
  RequestParser p({}, rec);
  size_t used = p.feed(all.data(), all.size());
  CHECK(used == a.size());
  CHECK(p.paused());
  CHECK_FALSE(p.in_message());
  CHECK(join(rec.log.events) == "head:GET /a | complete");

  // While paused nothing more is parsed.
  CHECK(p.feed(all.data() + used, all.size() - used) == 0);
  CHECK(rec.log.events.size() == 2);

  p.resume();
  CHECK_FALSE(p.paused());
  size_t used2 = p.feed(all.data() + used, all.size() - used);
  CHECK(used2 == b.size());
  CHECK(p.paused());
  CHECK(join(rec.log.events) == "head:GET /a | complete | head:POST /b | body:abc | complete");

  p.resume();
  used += used2;
  size_t used3 = p.feed(all.data() + used, all.size() - used);
  CHECK(used3 == c.size());
  CHECK(p.paused());
  CHECK(join(rec.log.events) ==
        "head:GET /a | complete | head:POST /b | body:abc | complete | head:POST /c | body:hi | complete");
  p.resume();
  CHECK(p.finish());
  CHECK(p.error() == ParseError::none);
}

TEST_CASE("pipelining byte by byte and in odd pieces gives the same events") {
  const std::string all =
      "GET /a HTTP/1.1\r\n\r\n"
      "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
  const std::string expected =
      "head:GET /a | complete | pause | head:POST /b | body:abc | complete | pause | head:POST /c | body:hi | "
      "complete | pause";
  for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{5}, size_t{13}}) {
    CAPTURE(step);
    const RequestRun r = run_request(all, step);
    CHECK(r.error == ParseError::none);
    CHECK(join(r.events) == expected);
    CHECK(r.consumed == all.size());
  }
}

TEST_CASE("chunked body fed byte by byte is de-chunked") {
  std::string body;
  std::string wire = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 1; i <= 40; i += 3) {
    std::string piece(static_cast<size_t>(i), static_cast<char>('a' + i % 26));
    body += piece;
    char size[16];
    snprintf(size, sizeof(size), "%X", i);
    wire += std::string(size) + "\r\n" + piece + "\r\n";
  }
  wire += "0\r\n\r\n";

  std::string got;
  size_t body_events = 0;
  struct Counting : RequestSink {
    std::string* got;
    size_t* events;
    bool complete = false;
    void on_request_head(RequestHead&&) override {}
    void on_request_body(const char* d, size_t n) override {
      got->append(d, n);
      ++*events;
    }
    void on_request_complete() override { complete = true; }
  } sink;
  sink.got = &got;
  sink.events = &body_events;
  RequestParser q({}, sink);
  for (size_t i = 0; i < wire.size(); ++i) {
    CHECK(q.in_message() == (i > 0));
    REQUIRE(q.feed(wire.data() + i, 1) == 1);
    REQUIRE(q.error() == ParseError::none);
  }
  CHECK(sink.complete);
  CHECK(q.paused());
  CHECK(got == body);
  CHECK(body_events == body.size());  // one event per body byte: streamed, not buffered
}

TEST_CASE("request line limit boundary") {
  ParserLimits limits;
  limits.max_request_line = 64;
  // method (3) + target + version "1.1" (3) == 64 is allowed, 65 is not.
  const std::string ok = "GET /" + std::string(64 - 3 - 3 - 1, 'a') + " HTTP/1.1\r\n\r\n";
  const std::string over = "GET /" + std::string(64 - 3 - 3, 'a') + " HTTP/1.1\r\n\r\n";
  for (size_t step : {size_t{0}, size_t{1}}) {
    CAPTURE(step);
    CHECK(run_request(ok, step, limits).error == ParseError::none);
    const RequestRun r = run_request(over, step, limits);
    CHECK(r.error == ParseError::uri_too_long);
    CHECK(r.heads.empty());
  }
}

TEST_CASE("header bytes and count limit boundaries") {
  ParserLimits limits;
  limits.max_header_bytes = 40;
  limits.max_header_count = 3;
  // names + values: "Host"(4) + "a"(1) + "X-Long"(6) + 29 = 40
  const std::string ok = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(29, 'v') + "\r\n\r\n";
  const std::string over = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(30, 'v') + "\r\n\r\n";
  const std::string three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  const std::string four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  for (size_t step : {size_t{0}, size_t{1}}) {
    CAPTURE(step);
    CHECK(run_request(ok, step, limits).error == ParseError::none);
    CHECK(run_request(over, step, limits).error == ParseError::headers_too_large);
    CHECK(run_request(three, step, limits).error == ParseError::none);
    CHECK(run_request(four, step, limits).error == ParseError::headers_too_large);
  }
}

TEST_CASE("whitespace llhttp skips is bounded too") {
  ParserLimits limits;
  limits.max_request_line = 100;
  limits.max_header_bytes = 100;
  limits.max_header_count = 2;
  // Leading OWS of a value never reaches a callback.
  const std::string ows = "GET / HTTP/1.1\r\nX:" + std::string(2000, ' ') + "v\r\n\r\n";
  // Empty lines before a request neither.
  std::string blank;
  for (int i = 0; i < 1000; ++i) blank += "\r\n";
  blank += "GET / HTTP/1.1\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{10}}) {
    CAPTURE(step);
    const RequestRun r1 = run_request(ows, step, limits);
    CHECK(r1.error == ParseError::headers_too_large);
    CHECK(r1.heads.empty());
    CHECK(run_request(blank, step, limits).error == ParseError::headers_too_large);
  }
  // The same with a little whitespace is fine.
  CHECK(run_request("GET / HTTP/1.1\r\nX:      v\r\n\r\n", 1, limits).error == ParseError::none);
}

TEST_CASE("trailers are dropped but bounded") {
  ParserLimits limits;
  limits.max_header_bytes = 64;
  const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  // head (24 bytes) + trailer (46 bytes) > 64: trailers have their own budget.
  const RequestRun ok = run_request(head + "T: " + std::string(45, 't') + "\r\n\r\n", 1, limits);
  CHECK(ok.error == ParseError::none);
  REQUIRE(ok.heads.size() == 1);
  CHECK(ok.heads[0].headers.size() == 1);  // only Transfer-Encoding; the trailer is not added
  const RequestRun big = run_request(head + "T: " + std::string(100, 't') + "\r\n\r\n", 1, limits);
  CHECK(big.error == ParseError::headers_too_large);
  CHECK(join(big.events) == "head:POST / | body:x");
}

TEST_CASE("upgrade request followed by more bytes: no upgrade stop, no smuggling") {
  const std::string in =
      "POST /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nabcd"
      "GET /y HTTP/1.1\r\n\r\n";
  RequestRecorder rec;
  RequestParser p({}, rec);
  size_t off = p.feed(in.data(), in.size());
  REQUIRE(p.paused());
  REQUIRE(p.error() == ParseError::none);
  p.resume();
  off += p.feed(in.data() + off, in.size() - off);
  CHECK(p.error() == ParseError::none);
  CHECK(off == in.size());
  CHECK(join(rec.log.events) == "head:POST /x | body:abcd | complete | head:GET /y | complete");
  REQUIRE(rec.heads.size() == 2);
  // The Upgrade header itself is still reported (the serializer drops it).
  CHECK(find_header(rec.heads[0].headers, "upgrade") != nullptr);
}

TEST_CASE("state: in_message, head_done, finish") {
  RequestRecorder rec;
  RequestParser p({}, rec);
  CHECK(p.finish());  // nothing yet: clean
  const std::string a = "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
  p.feed(a.data(), 3);
  CHECK(p.in_message());
  CHECK_FALSE(p.head_done());
  CHECK_FALSE(p.finish());  // EOF in the head
  p.feed(a.data() + 3, a.size() - 3 - 1);
  CHECK(p.in_message());
  CHECK(p.head_done());
  CHECK_FALSE(p.finish());  // EOF in the body
  p.feed(a.data() + a.size() - 1, 1);
  CHECK(p.paused());
  CHECK_FALSE(p.in_message());
  CHECK_FALSE(p.head_done());
  CHECK(p.finish());  // complete message, not yet resumed
  p.resume();
  CHECK(p.finish());
}

TEST_CASE("after an error nothing more is consumed and finish is not clean") {
  RequestRecorder rec;
  RequestParser p({}, rec);
  const std::string bad = "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  p.feed(bad.data(), bad.size());
  CHECK(p.error() == ParseError::bad_request);
  CHECK_FALSE(p.error_detail().empty());
  CHECK(p.feed("GET / HTTP/1.1\r\n\r\n", 18) == 0);
  CHECK(rec.log.events.empty());
  CHECK_FALSE(p.finish());
}

TEST_CASE("smuggling classics never produce a second request") {
  // CL.TE and TE.CL payloads: the first request is rejected before any head.
  const std::vector<std::string> payloads = {
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
  };
  for (const auto& s : payloads) {
    CAPTURE(s);
    for (size_t step : {size_t{0}, size_t{1}}) {
      const RequestRun r = run_request(s, step);
      CHECK(r.error == ParseError::bad_request);
      CHECK(r.heads.empty());
    }
  }
}

// SPEC §1: chunk extensions over 1 KiB on one chunk or 16 KiB in one message
// are refused; below the limits they are accepted and dropped (the body is
// de-chunked, so nothing of them can reach the app).
TEST_CASE("chunk extensions are bounded per chunk and per message") {
  const std::string head = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto chunk = [](const std::string& ext) { return "1;" + ext + "\r\nx\r\n"; };
  // "1;" + name: the ";" counts, so a name of 1023 bytes fills the budget.
  const std::string at_limit = std::string(1023, 'e');
  for (size_t step : {size_t{0}, size_t{1}, size_t{7}}) {
    CAPTURE(step);
    const RequestRun ok = run_request(head + chunk(at_limit) + "0\r\n\r\n", step);
    CHECK(ok.error == ParseError::none);
    CHECK(join(ok.events) == "head:POST /u | body:x | complete | pause");

    const RequestRun over = run_request(head + chunk(at_limit + "e") + "0\r\n\r\n", step);
    CHECK(over.error == ParseError::bad_request);
    CHECK(over.detail == "chunk extensions too long on one chunk");
    CHECK(join(over.events) == "head:POST /u");

    // name=value pairs: ";", name, "=", value all count.
    const RequestRun pairs = run_request(head + chunk("a=" + std::string(1020, 'v') + ";b") + "0\r\n\r\n", step);
    CHECK(pairs.error == ParseError::bad_request);

    // 64 KiB on one chunk (the conformance probe).
    const RequestRun big = run_request(head + chunk(std::string(65536, 'e')) + "0\r\n\r\n", step == 1 ? 64 : step);
    CHECK(big.error == ParseError::bad_request);
  }
  // 500 chunks with 200 bytes of extensions each: under the per-chunk limit,
  // over the per-message one; the budget is per message, so the next
  // request starts afresh.
  std::string many = head;
  for (int i = 0; i < 500; ++i) many += chunk(std::string(199, 'e'));
  many += "0\r\n\r\n";
  const RequestRun r = run_request(many, 0);
  CHECK(r.error == ParseError::bad_request);
  CHECK(r.detail == "chunk extensions too long in one message");
  std::string fine = head;
  for (int i = 0; i < 80; ++i) fine += chunk(std::string(199, 'e'));  // 80 * 200 = 16000
  fine += "0\r\n\r\n";
  const RequestRun two = run_request(fine + fine, 0);
  CHECK(two.error == ParseError::none);
  CHECK(two.heads.size() == 2);
  // The last chunk's extensions count too.
  CHECK(run_request(head + "0;" + std::string(2000, 'e') + "\r\n\r\n", 0).error == ParseError::bad_request);
  // Configurable.
  ParserLimits small;
  small.chunk_extensions.per_chunk = 8;
  CHECK(run_request(head + chunk("1234567") + "0\r\n\r\n", 0, small).error == ParseError::none);
  CHECK(run_request(head + chunk("12345678") + "0\r\n\r\n", 0, small).error == ParseError::bad_request);
}
