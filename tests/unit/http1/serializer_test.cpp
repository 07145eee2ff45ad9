#include <doctest/doctest.h>

#include <picojson.h>

#include <string>
#include <vector>

#include "driver.hpp"
#include "proxy/http1/serializer.hpp"

using namespace http1_test;
using namespace fedproxy::http1;

TEST_CASE("iequals and find_header") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("", ""));
  CHECK_FALSE(iequals("Host", "Hos"));
  CHECK_FALSE(iequals("Host", "Hosu"));
  CHECK_FALSE(iequals("[", "{"));  // only letters fold ('[' | 0x20 == '{')
  Headers h = {{"Host", "a"}, {"X-A", "1"}, {"x-a", "2"}};
  REQUIRE(find_header(h, "x-A") != nullptr);
  CHECK(find_header(h, "x-A")->value == "1");
  CHECK(find_header(h, "X-B") == nullptr);
}

TEST_CASE("iequals agrees with ASCII tolower on every pair of bytes") {
  auto lower = [](unsigned char c) { return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + 32) : c; };
  for (int x = 0; x < 256; ++x) {
    for (int y = 0; y < 256; ++y) {
      const char a[2] = {'k', static_cast<char>(x)};
      const char b[2] = {'K', static_cast<char>(y)};
      const bool want = lower(static_cast<unsigned char>(x)) == lower(static_cast<unsigned char>(y));
      if (iequals(std::string_view(a, 2), std::string_view(b, 2)) != want) {
        FAIL("iequals wrong for bytes " << x << " and " << y);
      }
    }
  }
}

TEST_CASE("is_hop_by_hop") {
  for (const char* n : {"Connection", "keep-alive", "Proxy-Authorization", "proxy-connection", "Proxy-Authenticate",
                        "TE", "Trailer", "Upgrade", "Transfer-Encoding", "content-length", "Expect"}) {
    CAPTURE(n);
    CHECK(is_hop_by_hop(n));
  }
  for (const char* n : {"Host", "Content-Type", "Trailers", "TEX", "Proxy", "X-Connection", "Authorization",
                        "Content-Length2", "Accept", "Upgrade-Insecure-Requests"}) {
    CAPTURE(n);
    CHECK_FALSE(is_hop_by_hop(n));
  }
}

TEST_CASE("remove_hop_by_hop also drops fields named in Connection") {
  Headers h = {{"Host", "a"},
               {"Connection", "keep-alive, X-Hop ,\tx-other"},
               {"X-Hop", "1"},
               {"Keep-Alive", "timeout=5"},
               {"X-Keep", "k"},
               {"connection", "X-Third"},
               {"X-Other", "o"},
               {"x-third", "t"},
               {"Proxy-Authorization", "Basic x"},
               {"Content-Type", "text/plain"}};
  remove_hop_by_hop(h);
  std::vector<std::string> names;
  for (const auto& x : h) names.push_back(x.name + "=" + x.value);
  CHECK(names == std::vector<std::string>{"Host=a", "X-Keep=k", "Content-Type=text/plain"});

  Headers plain = {{"Host", "a"}, {"TE", "trailers"}, {"Accept", "*/*"}};
  remove_hop_by_hop(plain);
  REQUIRE(plain.size() == 2);
  CHECK(plain[0].name == "Host");
  CHECK(plain[1].name == "Accept");
}

TEST_CASE("write_request_head") {
  RequestHead head;
  head.method = "GET";
  head.target = "/ignored";
  head.headers = {{"Host", "peer"},        {"Connection", "close"}, {"Keep-Alive", "1"}, {"TE", "trailers"},
                  {"Upgrade", "h2c"},       {"Trailer", "X"},        {"Expect", "100-continue"},
                  {"Proxy-Authorization", "x"}, {"Transfer-Encoding", "chunked"}, {"Content-Length", "9"},
                  {"Accept", "*/*"}};
  std::string out = "prefix|";
  write_request_head(head, "/api/v1", true, out);
  CHECK(out ==
        "prefix|GET /api/v1 HTTP/1.1\r\nHost: peer\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n");

  struct F {
    const char* method;
    BodyKind body;
    uint64_t length;
    bool keep_alive;
    const char* framing;
  };
  const std::vector<F> cases = {
      {"GET", BodyKind::none, 0, true, "Connection: keep-alive\r\n"},
      {"DELETE", BodyKind::none, 0, false, "Connection: close\r\n"},
      {"POST", BodyKind::none, 0, true, "Content-Length: 0\r\nConnection: keep-alive\r\n"},
      {"PUT", BodyKind::none, 0, true, "Content-Length: 0\r\nConnection: keep-alive\r\n"},
      {"PATCH", BodyKind::none, 0, true, "Content-Length: 0\r\nConnection: keep-alive\r\n"},
      {"POST", BodyKind::content_length, 18446744073709551615ull, true,
       "Content-Length: 18446744073709551615\r\nConnection: keep-alive\r\n"},
      {"POST", BodyKind::chunked, 0, false, "Transfer-Encoding: chunked\r\nConnection: close\r\n"},
  };
  for (const F& f : cases) {
    CAPTURE(f.method);
    RequestHead h;
    h.method = f.method;
    h.body = f.body;
    h.content_length = f.length;
    h.headers = {{"Host", "h"}};
    std::string o;
    write_request_head(h, "/", f.keep_alive, o);
    CHECK(o == std::string(f.method) + " / HTTP/1.1\r\nHost: h\r\n" + f.framing + "\r\n");
  }
}

TEST_CASE("write_request_head: extra header lines go after the headers, before the framing") {
  RequestHead h;
  h.method = "POST";
  h.body = BodyKind::content_length;
  h.content_length = 3;
  h.headers = {{"Host", "h"}, {"Connection", "keep-alive"}};
  std::string o;
  write_request_head(h, "/x", true, o, "X-Federation-Peer: acme\r\nX-Request-Id: r1\r\n");
  CHECK(o ==
        "POST /x HTTP/1.1\r\nHost: h\r\nX-Federation-Peer: acme\r\nX-Request-Id: r1\r\n"
        "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("remove_hop_by_hop: Connection: keep-alive and close name only themselves") {
  Headers h = {{"Connection", "keep-alive"}, {"Keep-Alive", "timeout=5"}, {"X-A", "1"}};
  remove_hop_by_hop(h);
  REQUIRE(h.size() == 1);
  CHECK(h[0].name == "X-A");
  Headers c = {{"Connection", "close"}, {"Close", "odd"}, {"X-B", "2"}};
  remove_hop_by_hop(c);  // RFC 9110 §7.6.1: a field named by a connection option goes too
  REQUIRE(c.size() == 1);
  CHECK(c[0].name == "X-B");
}

TEST_CASE("write_response_head") {
  ResponseHead head;
  head.status = 200;
  head.reason = "Fine";
  head.body = BodyKind::content_length;
  head.content_length = 12;
  head.headers = {{"Content-Type", "application/json"}, {"Connection", "keep-alive"},
                  {"Transfer-Encoding", "chunked"},     {"Content-Length", "99"}, {"X-A", "b"}};
  std::string out;
  write_response_head(head, false, out);
  CHECK(out ==
        "HTTP/1.1 200 Fine\r\nContent-Type: application/json\r\nX-A: b\r\nContent-Length: 12\r\n"
        "Connection: close\r\n\r\n");

  struct F {
    int status;
    BodyKind body;
    const char* framing;
  };
  const std::vector<F> cases = {
      {200, BodyKind::chunked, "Transfer-Encoding: chunked\r\n"},
      {200, BodyKind::until_close, "Transfer-Encoding: chunked\r\n"},  // re-framed
      {200, BodyKind::none, "Content-Length: 0\r\n"},
      {404, BodyKind::none, "Content-Length: 0\r\n"},
      {204, BodyKind::none, ""},
      {304, BodyKind::none, ""},
      {100, BodyKind::none, ""},
  };
  for (const F& f : cases) {
    CAPTURE(f.status);
    ResponseHead h;
    h.status = f.status;
    h.body = f.body;
    std::string o;
    write_response_head(h, true, o);
    CHECK(o == "HTTP/1.1 " + std::to_string(f.status) + " " + reason_phrase(f.status) + "\r\n" + f.framing +
                   "Connection: keep-alive\r\n\r\n");
  }
}

TEST_CASE("response to HEAD keeps its Content-Length through parse and write") {
  const ResponseRun r = run_response("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", 0, {"HEAD"});
  REQUIRE(r.heads.size() == 1);
  std::string out;
  write_response_head(r.heads[0], true, out);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("chunks") {
  std::string out;
  write_chunk("hello", 5, out);
  CHECK(out == "5\r\nhello\r\n");
  out.clear();
  std::string big(255, 'x');
  write_chunk(big.data(), big.size(), out);
  CHECK(out == "ff\r\n" + big + "\r\n");
  out.clear();
  write_chunk("", 0, out);
  CHECK(out.empty());  // not a last chunk
  write_last_chunk(out);
  CHECK(out == "0\r\n\r\n");
}

TEST_CASE("re-chunked body parses back to the same bytes") {
  RequestHead head;
  head.method = "POST";
  head.body = BodyKind::chunked;
  head.headers = {{"Host", "h"}};
  std::string wire;
  write_request_head(head, "/x", true, wire);
  std::string body;
  for (int i = 0; i < 20; ++i) {
    std::string piece(static_cast<size_t>(i * 7 + 1), static_cast<char>('A' + i));
    body += piece;
    write_chunk(piece.data(), piece.size(), wire);
  }
  write_last_chunk(wire);
  const RequestRun r = run_request(wire, 3);
  REQUIRE(r.error == ParseError::none);
  REQUIRE(r.events.size() == 4);
  CHECK(r.events[1] == "body:" + body);
  REQUIRE(r.heads.size() == 1);
  CHECK(r.heads[0].body == BodyKind::chunked);
}

TEST_CASE("request round trip: parse, strip, write, parse") {
  const std::string in =
      "PUT /r HTTP/1.1\r\nHost: a\r\nConnection: X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n"
      "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
  RequestRun r = run_request(in, 0);
  REQUIRE(r.heads.size() == 1);
  RequestHead head = r.heads[0];
  remove_hop_by_hop(head.headers);
  std::string wire;
  write_request_head(head, head.target, true, wire);
  CHECK(wire == "PUT /r HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n");
  wire += "abc";
  const RequestRun again = run_request(wire, 1);
  CHECK(again.error == ParseError::none);
  CHECK(join(again.events) == "head:PUT /r | body:abc | complete | pause");
}

TEST_CASE("reason_phrase") {
  const std::vector<std::pair<int, const char*>> known = {
      {100, "Continue"},
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {206, "Partial Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (const auto& [status, text] : known) {
    const int code = status;  // CAPTURE's lambda cannot capture a structured binding before clang 16
    CAPTURE(code);
    CHECK(std::string(reason_phrase(code)) == text);
  }
  CHECK(std::string(reason_phrase(299)) == "Unknown");
  CHECK(std::string(reason_phrase(0)) == "Unknown");
}

TEST_CASE("make_error_response") {
  const std::string r = make_error_response(400, "bad_request", "The request is malformed.", "req-1", true);
  const std::string body = R"({"error":"bad_request","message":"The request is malformed.","request_id":"req-1"})";
  CHECK(r == "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);

  const std::string k = make_error_response(429, "rate_limited", "Slow \"down\"\n.", "id", false, "Retry-After: 3\r\n");
  CHECK(k.find("Connection:") == std::string::npos);
  CHECK(k.find("\r\nRetry-After: 3\r\n\r\n") != std::string::npos);
  CHECK(k.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0) == 0);

  // It is a well-formed response whose body is valid JSON with the fields.
  for (const std::string& msg : {std::string("quote \" backslash \\ nl \n ctl \x01 bad \xfe"), std::string("")}) {
    const std::string resp = make_error_response(502, "upstream_unavailable", msg, "r-2", false);
    const ResponseRun parsed = run_response(resp, 1);
    REQUIRE_FALSE(parsed.failed);
    REQUIRE(parsed.heads.size() == 1);
    CHECK(parsed.heads[0].status == 502);
    const Header* ct = find_header(parsed.heads[0].headers, "content-type");
    REQUIRE(ct != nullptr);
    CHECK(ct->value == "application/json");
    REQUIRE(parsed.events.size() >= 2);
    const std::string json = parsed.events[1].substr(5);  // "body:"
    picojson::value v;
    const std::string err = picojson::parse(v, json);
    REQUIRE(err.empty());
    REQUIRE(v.is<picojson::object>());
    const auto& o = v.get<picojson::object>();
    CHECK(o.size() == 3);
    CHECK(o.at("error").get<std::string>() == "upstream_unavailable");
    CHECK(o.at("request_id").get<std::string>() == "r-2");
    if (msg.empty()) CHECK(o.at("message").get<std::string>().empty());
    else CHECK(o.at("message").get<std::string>() == "quote \" backslash \\ nl \n ctl \x01 bad \xef\xbf\xbd");
  }
}

TEST_CASE("is_valid_request_id") {
  CHECK(is_valid_request_id("a"));
  CHECK(is_valid_request_id("Req-1.2_3:abc"));
  CHECK(is_valid_request_id(std::string(128, 'x')));
  CHECK_FALSE(is_valid_request_id(std::string(129, 'x')));
  CHECK_FALSE(is_valid_request_id(""));
  for (const char* bad : {"a b", "a/b", "a\"b", "é", "a\nb", "a,b", "a;b", "a=b", "{x}"}) {
    CAPTURE(bad);
    CHECK_FALSE(is_valid_request_id(bad));
  }
  // Every single byte against the definition.
  for (int c = 0; c < 256; ++c) {
    const bool want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == ':' || c == '-';
    CHECK(is_valid_request_id(std::string(1, static_cast<char>(c))) == want);
  }
}

TEST_CASE("a WebSocket handshake is recognized by RFC 6455 §4.1 only") {
  auto head = [](std::string method, int minor, Headers headers, BodyKind body = BodyKind::none) {
    RequestHead h;
    h.method = std::move(method);
    h.version_minor = minor;
    h.headers = std::move(headers);
    h.body = body;
    return h;
  };
  CHECK(is_websocket_upgrade(head("GET", 1, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}})));
  CHECK(is_websocket_upgrade(head("GET", 1, {{"upgrade", "WebSocket"}, {"connection", "keep-alive, upgrade"}})));
  CHECK_FALSE(is_websocket_upgrade(head("GET", 1, {{"Upgrade", "h2c"}, {"Connection", "Upgrade"}})));
  CHECK_FALSE(is_websocket_upgrade(head("GET", 1, {{"Upgrade", "websocket"}})));
  CHECK_FALSE(is_websocket_upgrade(head("POST", 1, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}})));
  CHECK_FALSE(is_websocket_upgrade(head("GET", 0, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}})));
  CHECK_FALSE(is_websocket_upgrade(
      head("GET", 1, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, BodyKind::content_length)));
  // Forwarded with exactly one Connection line: the upgrade's.
  std::string out;
  RequestHead h = head("GET", 1, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Key", "k"}});
  remove_hop_by_hop(h.headers);
  write_request_head(h, "/ws", ConnectionLine::websocket_upgrade, out);
  CHECK(out == "GET /ws HTTP/1.1\r\nSec-WebSocket-Key: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST_CASE("one local-response writer: body, request id, close, HEAD") {
  LocalResponse r;
  r.body = "{}";
  r.request_id = "rid-9";
  std::string out;
  write_local_response(r, out);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Request-Id: rid-9\r\n\r\n{}");
  r.head_only = true;
  r.close = true;
  r.content_type = "text/plain";
  out.clear();
  write_local_response(r, out);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Request-Id: rid-9\r\n"
               "Connection: close\r\n\r\n");
}
