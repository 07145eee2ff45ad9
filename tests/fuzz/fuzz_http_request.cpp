// libFuzzer target: the HTTP/1 request parser (proxy/http1/request_parser).
//
// Input: [split control][limits control] then the bytes a client sends.
// The bytes are fed in pieces chosen by the split control (see Splitter),
// resuming after every pause as a session does. Checked:
//  - no crash, leak or UB (sanitizers);
//  - feed() never consumes more than offered, never stalls without pausing or
//    failing, consumes nothing once failed, and delivers no event after an
//    error; finish() is clean exactly between messages;
//  - events per message come in order head, body*, complete; a head obeys
//    SPEC §1 (one Host, TE exactly "chunked" and never with CL, HTTP/1.0/1.1,
//    no CONNECT, limits) and the body matches its framing;
//  - the same events and error as when the input is fed in one piece
//    (pipelined messages in the same order), except for the raw-head bound,
//    which by design counts only bytes of feeds that end inside a head;
//  - what the proxy would forward (hop-by-hop headers removed, framing
//    re-written by the serializer) parses back to the same message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/message.hpp"
#include "proxy/http1/request_parser.hpp"
#include "proxy/http1/serializer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace fedproxy::http1;
using fedproxy::fuzz::append_body_event;
using fedproxy::fuzz::piece;
using fedproxy::fuzz::Splitter;

namespace {

struct Message {
  RequestHead head;
  std::string body;
  bool complete = false;
};

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

void check_head(const RequestHead& h, const ParserLimits& limits) {
  FUZZ_CHECK(!h.method.empty(), "empty method");
  FUZZ_CHECK(h.method != "CONNECT", "CONNECT must be refused");
  for (unsigned char c : h.method) FUZZ_CHECK((c >= 'A' && c <= 'Z') || c == '-', "method not A-Z or '-'");
  FUZZ_CHECK(!h.target.empty(), "empty request-target");
  for (unsigned char c : h.target) FUZZ_CHECK(c > 0x20 && c != 0x7f, "control byte or space in target");
  FUZZ_CHECK(h.method.size() + h.target.size() <= limits.max_request_line, "request line over the limit");
  FUZZ_CHECK(h.version_minor == 0 || h.version_minor == 1, "version other than 1.0/1.1");
  FUZZ_CHECK(h.headers.size() <= limits.max_header_count, "more header fields than the limit");
  size_t bytes = 0;
  unsigned hosts = 0, cls = 0, tes = 0;
  for (const Header& f : h.headers) {
    FUZZ_CHECK(!f.name.empty(), "empty header name");
    for (unsigned char c : f.name) FUZZ_CHECK(is_tchar(c), "header name with a non-token byte");
    for (unsigned char c : f.value) {
      FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL in a header value");
      FUZZ_CHECK(c >= 0x20 || c == '\t', "control byte in a header value");
      FUZZ_CHECK(c != 0x7f, "DEL in a header value");
    }
    if (!f.value.empty()) {
      FUZZ_CHECK(f.value.front() != ' ' && f.value.front() != '\t', "value keeps leading OWS");
      FUZZ_CHECK(f.value.back() != ' ' && f.value.back() != '\t', "value keeps trailing OWS");
    }
    bytes += f.name.size() + f.value.size();
    if (iequals(f.name, "host")) ++hosts;
    if (iequals(f.name, "content-length")) ++cls;
    if (iequals(f.name, "transfer-encoding")) {
      ++tes;
      FUZZ_CHECK(iequals(f.value, "chunked"), "Transfer-Encoding other than chunked accepted");
    }
  }
  FUZZ_CHECK(bytes <= limits.max_header_bytes, "header bytes over the limit");
  FUZZ_CHECK(hosts <= 1, "duplicate Host accepted");
  FUZZ_CHECK(cls <= 1, "duplicate Content-Length accepted");
  FUZZ_CHECK(tes <= 1, "duplicate Transfer-Encoding accepted");
  FUZZ_CHECK(!(cls > 0 && tes > 0), "Content-Length together with Transfer-Encoding accepted");
  FUZZ_CHECK(!(tes > 0 && h.version_minor == 0), "Transfer-Encoding in HTTP/1.0 accepted");
  switch (h.body) {
    case BodyKind::none:
      FUZZ_CHECK(tes == 0, "Transfer-Encoding but no body");
      FUZZ_CHECK(h.content_length == 0, "content_length set without a body");
      break;
    case BodyKind::content_length:
      FUZZ_CHECK(cls == 1 && tes == 0, "content_length body without exactly one Content-Length");
      FUZZ_CHECK(h.content_length > 0 && h.content_length <= static_cast<uint64_t>(INT64_MAX),
                 "content_length out of range");
      break;
    case BodyKind::chunked:
      FUZZ_CHECK(tes == 1 && cls == 0, "chunked body without Transfer-Encoding: chunked");
      break;
    case BodyKind::until_close:
      FUZZ_CHECK(false, "a request body never reads until close");
  }
  if (h.expect_continue) FUZZ_CHECK(h.version_minor == 1, "Expect: 100-continue honoured in HTTP/1.0");
}

struct Recorder : RequestSink {
  const ParserLimits& limits;
  std::vector<std::string> events;  // body pieces merged: independent of the split
  std::vector<Message> messages;
  bool open = false;  // a head was delivered and its message is not complete
  bool just_completed = false;

  explicit Recorder(const ParserLimits& l) : limits(l) {}

  void on_request_head(RequestHead&& head) override {
    FUZZ_CHECK(!open, "head while the previous message is still open");
    check_head(head, limits);
    events.push_back("head:" + head.method + " " + head.target);
    messages.push_back(Message{std::move(head), {}, false});
    open = true;
  }
  void on_request_body(const char* data, size_t len) override {
    FUZZ_CHECK(open, "body outside a message");
    Message& m = messages.back();
    FUZZ_CHECK(m.head.body != BodyKind::none, "body bytes for a message without a body");
    m.body.append(data, len);
    if (m.head.body == BodyKind::content_length)
      FUZZ_CHECK(m.body.size() <= m.head.content_length, "more body than Content-Length");
    append_body_event(events, data, len);
  }
  void on_request_complete() override {
    FUZZ_CHECK(open, "complete without a head");
    Message& m = messages.back();
    if (m.head.body == BodyKind::content_length)
      FUZZ_CHECK(m.body.size() == m.head.content_length, "complete before Content-Length bytes");
    m.complete = true;
    open = false;
    just_completed = true;
    events.push_back("complete");
  }
};

struct Run {
  std::vector<std::string> events;
  std::vector<Message> messages;
  ParseError error = ParseError::none;
  std::string detail;
};

Run run(std::string_view input, Splitter split, const ParserLimits& limits) {
  Recorder rec(limits);
  RequestParser parser(limits, rec);
  size_t off = 0;
  while (off < input.size()) {
    const size_t n = piece(split.next(), input.size() - off);
    rec.just_completed = false;
    const size_t c = parser.feed(input.data() + off, n);
    FUZZ_CHECK(c <= n, "feed consumed more than offered");
    off += c;
    if (parser.error() != ParseError::none) {
      FUZZ_CHECK(!parser.paused(), "paused and failed at once");
      // After an error: nothing more is consumed, no further event.
      const size_t before = rec.events.size();
      FUZZ_CHECK(parser.feed(input.data() + off, input.size() - off) == 0 || off == input.size(),
                 "bytes consumed after an error");
      FUZZ_CHECK(rec.events.size() == before, "event after an error");
      FUZZ_CHECK(!parser.finish(), "finish() clean after an error");
      FUZZ_CHECK(!parser.error_detail().empty(), "error without a detail");
      break;
    }
    if (parser.paused()) {
      FUZZ_CHECK(rec.just_completed, "paused without completing a message");
      FUZZ_CHECK(!parser.in_message() && !parser.head_done(), "paused inside a message");
      // While paused nothing more is parsed.
      if (off < input.size()) FUZZ_CHECK(parser.feed(input.data() + off, input.size() - off) == 0,
                                         "consumed while paused");
      rec.events.push_back("pause");
      parser.resume();
      continue;
    }
    FUZZ_CHECK(!rec.just_completed, "message completed without a pause");
    FUZZ_CHECK(c == n, "feed stalled: consumed less without pause or error");
    if (rec.open) FUZZ_CHECK(parser.in_message() && parser.head_done(), "head delivered but state says not");
  }
  if (parser.error() == ParseError::none) {
    FUZZ_CHECK(off == input.size(), "input left over without an error");
    FUZZ_CHECK(parser.finish() == !parser.in_message(), "finish() disagrees with in_message()");
    if (rec.open) FUZZ_CHECK(!parser.finish(), "finish() clean inside a body");
  }
  Run r;
  r.events = std::move(rec.events);
  r.messages = std::move(rec.messages);
  r.error = parser.error();
  r.detail = parser.error_detail();
  return r;
}

// What the ingress session forwards upstream parses back to the same message.
void check_forward(const Message& m) {
  RequestHead h = m.head;
  remove_hop_by_hop(h.headers);
  std::string wire;
  write_request_head(h, h.target, h.keep_alive, wire);
  if (h.body == BodyKind::content_length) {
    wire += m.body;
  } else if (h.body == BodyKind::chunked) {
    write_chunk(m.body.data(), m.body.size(), wire);
    write_last_chunk(wire);
  }
  ParserLimits big;
  big.max_request_line = 1 << 20;
  big.max_header_bytes = 1 << 20;
  big.max_header_count = 1 << 16;
  const Run back = run(wire, Splitter(0), big);
  FUZZ_CHECK(back.error == ParseError::none, "forwarded request does not parse");
  FUZZ_CHECK(back.messages.size() == 1 && back.messages[0].complete, "forwarded bytes are not one request");
  const Message& b = back.messages[0];
  FUZZ_CHECK(b.head.method == h.method && b.head.target == h.target, "forwarded request line differs");
  FUZZ_CHECK(b.body == m.body, "forwarded body differs");
  FUZZ_CHECK(b.head.keep_alive == h.keep_alive, "forwarded keep-alive differs");
  if (h.body == BodyKind::content_length)
    FUZZ_CHECK(b.head.body == BodyKind::content_length && b.head.content_length == h.content_length,
               "forwarded framing differs");
  else
    FUZZ_CHECK(b.head.body == h.body, "forwarded framing differs");
  Headers got = b.head.headers;
  std::erase_if(got, [](const Header& x) { return is_hop_by_hop(x.name); });
  FUZZ_CHECK(got.size() == h.headers.size(), "forwarded header count differs");
  for (size_t i = 0; i < got.size(); ++i)
    FUZZ_CHECK(got[i].name == h.headers[i].name && got[i].value == h.headers[i].value,
               "forwarded header differs");
}

ParserLimits limits_from(uint8_t c) {
  ParserLimits l;  // 0..3: the defaults (most inputs)
  if (c % 8 >= 4) {  // small limits, so that the fuzzer reaches their edges
    l.max_request_line = 8 + (c >> 3) * 4u;
    l.max_header_bytes = 16 + (c >> 3) * 8u;
    l.max_header_count = 1 + (c >> 3) % 12u;
  }
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Splitter split(data[0]);
  const ParserLimits limits = limits_from(data[1]);
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  const Run r = run(input, split, limits);
  if (!split.whole()) {
    const Run whole = run(input, Splitter(0), limits);
    const bool raw_bound = r.detail == "request head too large" || whole.detail == "request head too large";
    if (!raw_bound) {
      FUZZ_CHECK((r.error == ParseError::none) == (whole.error == ParseError::none),
                 "whether the input is refused depends on how it was split");
      // Which of two problems in one span is seen first may depend on the
      // split: llhttp hands a span (target, header value) to its callback at
      // the end of the span or of the buffer, so a limit check on the span can
      // run before or after llhttp's own syntax error inside it (400 vs
      // 414/431). Both refuse; any other difference is a finding.
      FUZZ_CHECK(r.error == whole.error || r.error == ParseError::bad_request ||
                     whole.error == ParseError::bad_request,
                 "error depends on how the input was split");
      FUZZ_CHECK(r.events == whole.events, "events depend on how the input was split");
    }
  }
  for (const Message& m : r.messages)
    if (m.complete) check_forward(m);
  return 0;
}
