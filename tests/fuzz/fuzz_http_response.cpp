// libFuzzer target: the HTTP/1 response parser (proxy/http1/response_parser).
//
// Input: [split control][HEAD mask][header budget control] then the bytes an
// upstream app (or a peer) sends back. Bit i of the HEAD mask says response
// i answers a HEAD request (expect_response_to is called before each one).
// finish() is called at the end, as on upstream EOF. Checked:
//  - no crash, leak or UB; feed() never over-consumes, never stalls, takes
//    nothing after a failure or while paused; no event after a failure;
//  - per response: head (never 1xx, never 101, HTTP/1.0/1.1, TE exactly
//    "chunked" and not with CL), body*, complete; no body for HEAD, 204, 304;
//    Content-Length bodies complete with exactly that many bytes; an
//    until-close body completes only at finish();
//  - the same events and outcome as when fed in one piece;
//  - what the proxy passes on (hop-by-hop removed, framing re-written, until-
//    close re-framed as chunked) parses back to the same response.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/message.hpp"
#include "proxy/http1/response_parser.hpp"
#include "proxy/http1/serializer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace fedproxy::http1;
using fedproxy::fuzz::append_body_event;
using fedproxy::fuzz::piece;
using fedproxy::fuzz::Splitter;

namespace {

struct Message {
  ResponseHead head;
  bool head_request = false;
  std::string body;
  bool complete = false;
};

void check_head(const ResponseHead& h, bool head_request, size_t max_header_bytes) {
  FUZZ_CHECK(h.status >= 200 && h.status <= 999, "status out of range (1xx must be swallowed)");
  FUZZ_CHECK(h.version_minor == 0 || h.version_minor == 1, "version other than 1.0/1.1");
  FUZZ_CHECK(h.headers.size() <= 1000, "more than 1000 header fields");
  size_t bytes = h.reason.size();
  unsigned cls = 0, tes = 0;
  for (const Header& f : h.headers) {
    FUZZ_CHECK(!f.name.empty(), "empty header name");
    for (unsigned char c : f.value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL in a value");
    bytes += f.name.size() + f.value.size();
    if (iequals(f.name, "content-length")) ++cls;
    if (iequals(f.name, "transfer-encoding")) {
      ++tes;
      FUZZ_CHECK(iequals(f.value, "chunked"), "Transfer-Encoding other than chunked accepted");
    }
  }
  FUZZ_CHECK(bytes <= max_header_bytes, "head bytes over the limit");
  FUZZ_CHECK(cls <= 1 && tes <= 1, "duplicate framing header accepted");
  FUZZ_CHECK(!(cls > 0 && tes > 0), "Content-Length together with Transfer-Encoding accepted");
  FUZZ_CHECK(!(tes > 0 && h.version_minor == 0), "Transfer-Encoding in HTTP/1.0 accepted");
  if (h.status == 204 || h.status == 304) FUZZ_CHECK(h.body == BodyKind::none, "204/304 with a body");
  if (h.body == BodyKind::chunked) FUZZ_CHECK(tes == 1, "chunked without Transfer-Encoding");
  if (h.body == BodyKind::content_length)
    FUZZ_CHECK(cls == 1 && h.content_length > 0 && h.content_length <= static_cast<uint64_t>(INT64_MAX),
               "bad Content-Length framing");
  if (h.body == BodyKind::until_close) FUZZ_CHECK(cls == 0 && tes == 0, "until-close with framing headers");
  if (h.body != BodyKind::content_length) FUZZ_CHECK(h.content_length == 0, "stray content_length");
  (void)head_request;
}

struct Recorder : ResponseSink {
  size_t max_header_bytes;
  std::vector<std::string> events;
  std::vector<Message> messages;
  bool open = false;
  bool just_completed = false;
  bool next_is_head = false;  // what the response being parsed answers

  explicit Recorder(size_t m) : max_header_bytes(m) {}

  void on_response_head(ResponseHead&& head) override {
    FUZZ_CHECK(!open, "head while the previous response is open");
    check_head(head, next_is_head, max_header_bytes);
    events.push_back("head:" + std::to_string(head.status));
    messages.push_back(Message{std::move(head), next_is_head, {}, false});
    open = true;
  }
  void on_response_body(const char* data, size_t len) override {
    FUZZ_CHECK(open, "body outside a response");
    Message& m = messages.back();
    FUZZ_CHECK(!m.head_request, "body in a response to HEAD");
    FUZZ_CHECK(m.head.body != BodyKind::none, "body bytes for a response without a body");
    m.body.append(data, len);
    if (m.head.body == BodyKind::content_length)
      FUZZ_CHECK(m.body.size() <= m.head.content_length, "more body than Content-Length");
    append_body_event(events, data, len);
  }
  void on_response_complete() override {
    FUZZ_CHECK(open, "complete without a head");
    Message& m = messages.back();
    if (m.head.body == BodyKind::content_length && !m.head_request)
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
  bool failed = false;
  bool finish_ok = false;
};

Run run(std::string_view input, Splitter split, uint32_t head_mask, size_t max_header_bytes) {
  Recorder rec(max_header_bytes);
  ResponseParser parser(rec, max_header_bytes);
  unsigned index = 0;
  auto announce = [&] {
    rec.next_is_head = index < 32 && ((head_mask >> index) & 1u) != 0;
    parser.expect_response_to(rec.next_is_head ? "HEAD" : "GET");
    ++index;
  };
  announce();
  size_t off = 0;
  while (off < input.size()) {
    const size_t n = piece(split.next(), input.size() - off);
    rec.just_completed = false;
    const size_t c = parser.feed(input.data() + off, n);
    FUZZ_CHECK(c <= n, "feed consumed more than offered");
    off += c;
    if (parser.failed()) {
      FUZZ_CHECK(!parser.paused(), "paused and failed at once");
      const size_t before = rec.events.size();
      if (off < input.size())
        FUZZ_CHECK(parser.feed(input.data() + off, input.size() - off) == 0, "bytes consumed after a failure");
      FUZZ_CHECK(rec.events.size() == before, "event after a failure");
      FUZZ_CHECK(!parser.finish(), "finish() clean after a failure");
      FUZZ_CHECK(!parser.error_detail().empty(), "failure without a detail");
      break;
    }
    if (parser.paused()) {
      FUZZ_CHECK(rec.just_completed, "paused without completing a response");
      FUZZ_CHECK(!parser.in_message(), "paused inside a response");
      if (off < input.size())
        FUZZ_CHECK(parser.feed(input.data() + off, input.size() - off) == 0, "consumed while paused");
      rec.events.push_back("pause");
      announce();
      parser.resume();
      continue;
    }
    FUZZ_CHECK(!rec.just_completed, "response completed without a pause");
    FUZZ_CHECK(c == n, "feed stalled: consumed less without pause or error");
  }
  Run r;
  r.failed = parser.failed();
  if (!parser.failed()) {
    FUZZ_CHECK(off == input.size(), "input left over without a failure");
    const bool was_open = rec.open;
    const bool until_close = was_open && rec.messages.back().head.body == BodyKind::until_close &&
                             !rec.messages.back().head_request;
    const size_t before = rec.events.size();
    r.finish_ok = parser.finish();
    if (until_close) {
      FUZZ_CHECK(r.finish_ok && !rec.open, "until-close body not completed by finish()");
    } else if (was_open) {
      FUZZ_CHECK(!r.finish_ok && rec.events.size() == before, "truncated response reported complete");
    }
    if (r.finish_ok) {
      FUZZ_CHECK(!parser.in_message(), "finish() clean inside a response");
      rec.events.push_back("eof");
    } else {
      FUZZ_CHECK(parser.failed(), "finish() not clean but not failed");
    }
  }
  r.events = std::move(rec.events);
  r.messages = std::move(rec.messages);
  return r;
}

// What the proxy passes on parses back to the same response.
void check_forward(const Message& m) {
  ResponseHead h = m.head;
  remove_hop_by_hop(h.headers);
  std::string wire;
  write_response_head(h, h.keep_alive, wire, true);
  if (!m.head_request) {
    if (h.body == BodyKind::content_length) {
      wire += m.body;
    } else if (h.body == BodyKind::chunked || h.body == BodyKind::until_close) {
      write_chunk(m.body.data(), m.body.size(), wire);
      write_last_chunk(wire);
    }
  }
  const Run back = run(wire, Splitter(0), m.head_request ? 1u : 0u, 1 << 20);
  FUZZ_CHECK(!back.failed, "forwarded response does not parse");
  FUZZ_CHECK(back.messages.size() == 1 && back.messages[0].complete, "forwarded bytes are not one response");
  const Message& b = back.messages[0];
  FUZZ_CHECK(b.head.status == h.status, "forwarded status differs");
  if (!h.reason.empty()) FUZZ_CHECK(b.head.reason == h.reason, "forwarded reason differs");
  FUZZ_CHECK(b.body == m.body, "forwarded body differs");
  FUZZ_CHECK(b.head.keep_alive == h.keep_alive || h.body == BodyKind::until_close || m.head_request,
             "forwarded keep-alive differs");
  Headers got = b.head.headers;
  std::erase_if(got, [](const Header& x) { return is_hop_by_hop(x.name); });
  FUZZ_CHECK(got.size() == h.headers.size(), "forwarded header count differs");
  for (size_t i = 0; i < got.size(); ++i)
    FUZZ_CHECK(got[i].name == h.headers[i].name && got[i].value == h.headers[i].value,
               "forwarded header differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const Splitter split(data[0]);
  const uint32_t head_mask = data[1] < 0xC0 ? 0u : data[1];  // mostly GET; some HEAD patterns
  const size_t max_header_bytes = data[2] < 0xC0 ? 65536 : 8 + (data[2] - 0xC0) * 16u;
  const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

  const Run r = run(input, split, head_mask, max_header_bytes);
  if (!split.whole()) {
    const Run whole = run(input, Splitter(0), head_mask, max_header_bytes);
    FUZZ_CHECK(r.failed == whole.failed, "failure depends on how the input was split");
    FUZZ_CHECK(r.finish_ok == whole.finish_ok, "EOF outcome depends on how the input was split");
    FUZZ_CHECK(r.events == whole.events, "events depend on how the input was split");
  }
  for (const Message& m : r.messages)
    if (m.complete) check_forward(m);
  return 0;
}
