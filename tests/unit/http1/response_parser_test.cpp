#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "driver.hpp"

using namespace http1_test;
using namespace std::string_literals;

namespace {

struct RCase {
  const char* name;
  std::string input;
  std::vector<std::string> methods;  // what each response answers
  bool failed;
  std::string events;  // joined; "eof" = finish() returned true
};

std::vector<RCase> table() {
  return {
      {"200 with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", {}, false,
       "head:200 | body:ok | complete | pause | eof"},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n", {},
       false, "head:200 | body:abcde | complete | pause | eof"},
      {"100 Continue swallowed", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", {},
       false, "head:200 | body:ok | complete | pause | eof"},
      {"103 with headers and 102 swallowed",
       "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
       "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
       {}, false, "head:201 | complete | pause | eof"},
      {"1xx never has a body", "HTTP/1.1 150 Odd\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
       {}, false, "head:200 | body:x | complete | pause | eof"},
      {"response to HEAD has no body",
       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", {"HEAD", "GET"},
       false, "head:200 | complete | pause | head:200 | body:abc | complete | pause | eof"},
      {"response to HEAD without framing", "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", {"HEAD", "GET"},
       false, "head:200 | complete | pause | head:204 | complete | pause | eof"},
      {"204 and 304 have no body",
       "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
       {}, false, "head:204 | complete | pause | head:304 | complete | pause | head:200 | body:z | complete | pause | eof"},
      {"until close", "HTTP/1.1 200 OK\r\n\r\nall the rest", {}, false, "head:200 | body:all the rest | complete | eof"},
      {"HTTP/1.0 until close", "HTTP/1.0 200 OK\r\n\r\nold", {}, false, "head:200 | body:old | complete | eof"},
      {"no reason phrase", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nq", {}, false,
       "head:200 | body:q | complete | pause | eof"},
      // ---- truncated ---------------------------------------------------------
      {"EOF in Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", {}, false, "head:200 | body:ab"},
      {"EOF in chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", {}, false,
       "head:200 | body:ab"},
      {"EOF in head", "HTTP/1.1 200 OK\r\nContent-Le", {}, false, ""},
      {"EOF after only a 100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", {}, false, ""},
      // ---- refused -------------------------------------------------------------
      {"101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", {},
       true, ""},
      {"101 without Upgrade headers", "HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
       {}, true, ""},
      {"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", {}, true, ""},
      {"duplicate CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", {}, true, ""},
      {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", {}, true, ""},
      {"TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {}, true, ""},
      {"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", {}, true, ""},
      {"bad status", "HTTP/1.1 99 X\r\n\r\n", {}, true, ""},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", {}, true, ""},
      {"NUL in value", "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n"s, {}, true, ""},
      {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", {}, true, "head:200"},
      {"header section too large", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70000, 'b') + "\r\n\r\n", {}, true, ""},
  };
}

}  // namespace

TEST_CASE("response table: one piece, byte by byte, odd pieces: identical results") {
  for (const RCase& c : table()) {
    CAPTURE(c.name);
    for (size_t step : {size_t{0}, size_t{1}, size_t{6}}) {
      CAPTURE(step);
      const ResponseRun r = run_response(c.input, step, c.methods);
      CHECK(r.failed == c.failed);
      CHECK(join(r.events) == c.events);
      CHECK_FALSE(r.stalled);
    }
  }
}

TEST_CASE("response head fields") {
  const std::string in =
      "HTTP/1.1 404 Not Found Here\r\nContent-Type: text/plain \r\nX-Multi:  a ,b\t\r\nContent-Length: 4\r\n\r\nnope";
  for (size_t step : {size_t{0}, size_t{1}}) {
    const ResponseRun r = run_response(in, step);
    REQUIRE(r.heads.size() == 1);
    const ResponseHead& h = r.heads[0];
    CHECK(h.status == 404);
    CHECK(h.reason == "Not Found Here");
    CHECK(h.version_minor == 1);
    CHECK(h.keep_alive);
    CHECK(h.body == BodyKind::content_length);
    CHECK(h.content_length == 4);
    REQUIRE(h.headers.size() == 3);
    CHECK(h.headers[0].value == "text/plain");
    CHECK(h.headers[1].value == "a ,b");
  }
}

TEST_CASE("response body kinds and keep-alive") {
  struct K {
    std::string in;
    std::string method;
    BodyKind body;
    uint64_t length;
    bool keep_alive;
  };
  const std::vector<K> cases = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "GET", BodyKind::content_length, 3, true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", BodyKind::none, 0, true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET", BodyKind::chunked, 0, true},
      {"HTTP/1.1 200 OK\r\n\r\n", "GET", BodyKind::until_close, 0, false},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "GET", BodyKind::content_length, 1,
       false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", BodyKind::content_length, 1, false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", "GET", BodyKind::content_length,
       1, true},
      {"HTTP/1.1 204 No Content\r\n\r\n", "GET", BodyKind::none, 0, true},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", BodyKind::none, 0, true},
      // HEAD: the framing the headers announce is reported; nothing is read.
      {"HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n", "HEAD", BodyKind::content_length, 123, true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "head", BodyKind::chunked, 0, true},
      {"HTTP/1.1 200 OK\r\n\r\n", "HEAD", BodyKind::until_close, 0, true},
  };
  for (const K& k : cases) {
    CAPTURE(k.in);
    CAPTURE(k.method);
    const ResponseRun r = run_response(k.in, 0, {k.method});
    REQUIRE_FALSE(r.failed);
    REQUIRE(r.heads.size() == 1);
    CHECK(r.heads[0].body == k.body);
    CHECK(r.heads[0].content_length == k.length);
    CHECK(r.heads[0].keep_alive == k.keep_alive);
    CHECK(r.finish_ok);
  }
}

TEST_CASE("responses pause after each message") {
  const std::string a = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";
  const std::string b = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n";
  const std::string all = a + b;
  ResponseRecorder rec;
  ResponseParser p(rec);
  p.expect_response_to("POST");
  size_t used = p.feed(all.data(), all.size());
  CHECK(used == a.size());
  CHECK(p.paused());
  CHECK_FALSE(p.in_message());
  CHECK(p.feed(all.data() + used, all.size() - used) == 0);
  CHECK(join(rec.log.events) == "head:200 | body:a | complete");
  p.resume();
  CHECK(p.feed(all.data() + used, all.size() - used) == b.size());
  CHECK(join(rec.log.events) == "head:200 | body:a | complete | head:200 | body:b | complete");
  p.resume();
  CHECK(p.finish());
}

TEST_CASE("in_message stays true across an interim response") {
  ResponseRecorder rec;
  ResponseParser p(rec);
  p.expect_response_to("PUT");
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  CHECK(p.feed(cont.data(), cont.size()) == cont.size());
  CHECK(rec.heads.empty());
  CHECK(p.in_message());
  CHECK_FALSE(p.paused());
  CHECK_FALSE(p.finish());
}

TEST_CASE("HEAD flag is reset when a response completes") {
  ResponseRecorder rec;
  ResponseParser p(rec);
  p.expect_response_to("HEAD");
  const std::string r1 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  const std::string r2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  CHECK(p.feed(r1.data(), r1.size()) == r1.size());
  REQUIRE(p.paused());
  p.resume();  // no expect_response_to: a normal response is expected
  CHECK(p.feed(r2.data(), r2.size()) == r2.size());
  CHECK(join(rec.log.events) == "head:200 | complete | head:200 | body:ok | complete");
}

TEST_CASE("response header limit boundary") {
  // status text + names + values
  const std::string ok = "HTTP/1.1 200 OK\r\nX: " + std::string(47, 'v') + "\r\nContent-Length: 0\r\n\r\n";
  // "OK"(2) + "X"(1) + 47 + "Content-Length"(14) + "0"(1) = 65
  CHECK_FALSE(run_response(ok, 0, {}, 65).failed);
  CHECK(run_response(ok, 0, {}, 64).failed);
  CHECK(run_response(ok, 1, {}, 64).failed);
}

TEST_CASE("101 is refused with a clear reason") {
  ResponseRecorder rec;
  ResponseParser p(rec);
  const std::string in = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  p.feed(in.data(), in.size());
  CHECK(p.failed());
  CHECK(p.error_detail().find("101") != std::string::npos);
  CHECK(rec.heads.empty());
}

TEST_CASE("response chunk extensions are bounded like request ones") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const ResponseRun ok = run_response(head + "1;" + std::string(1023, 'e') + "\r\nx\r\n0\r\n\r\n", 0);
  CHECK_FALSE(ok.failed);
  const ResponseRun over = run_response(head + "1;" + std::string(1024, 'e') + "\r\nx\r\n0\r\n\r\n", 1);
  CHECK(over.failed);
  std::string many = head;
  for (int i = 0; i < 100; ++i) many += "1;" + std::string(199, 'e') + "\r\nx\r\n";
  CHECK(run_response(many + "0\r\n\r\n", 0).failed);
}

TEST_CASE("after an upgrade request, 101 is a final response and the rest is the tunnel's") {
  ResponseRecorder rec;
  ResponseParser p(rec);
  p.expect_response_to("GET");
  p.expect_upgrade();
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const std::string frames = "\x81\x05hello";
  const std::string in = head + frames;
  size_t n = p.feed(in.data(), in.size());
  CHECK_FALSE(p.failed());
  CHECK(n == head.size());  // the frame bytes are not parsed as HTTP
  REQUIRE(rec.heads.size() == 1);
  CHECK(rec.heads[0].status == 101);
  CHECK(rec.heads[0].body == BodyKind::none);
  CHECK(p.paused());
  // The expectation is for one response only.
  ResponseParser q(rec);
  q.expect_upgrade();
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  q.feed(ok.data(), ok.size());
  q.resume();
  const std::string again = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  q.feed(again.data(), again.size());
  CHECK(q.failed());
}
