// Unit tests for policy/audit (SPEC §10): the exact line format, JSON
// escaping, the hash chain, and what verify_audit_log reports for every kind
// of tampering (edited byte, dropped, reordered, forged, truncated lines).
//
// Known-answer vectors were computed independently at test-writing time with
// coreutils, e.g. `printf 'GET\n/api\nx=1' | sha256sum`.

#include "config/etag.hpp"
#include "policy/audit.hpp"

#include <doctest/doctest.h>
#include <picojson.h>

#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace fedproxy::policy;

namespace {

const std::string kZeros(64, '0');

AuditRequest sample_request() {
  AuditRequest r;
  r.ts = "2026-01-02T03:04:05.678Z";
  r.request_id = "req-1";
  r.peer = "partner-labs";
  r.entity_uri = "spiffe://partner.example/nodes/b";
  r.grant = "g-1";
  r.method = "GET";
  r.path = "/api/v1/tasks";
  r.resource = "tasks";
  r.decision = "allow";
  r.reason = "";
  r.outcome = "completed";
  r.status = 200;
  r.bytes_in = 12;
  r.bytes_out = 3456;
  r.duration_ms = 1.5;
  r.query_hash = query_hash("GET", "/api/v1/tasks", "");
  r.cert_fingerprint = "ab:cd";
  return r;
}

// Strings that try to break a JSON line.
const std::vector<std::string>& nasty() {
  static const std::vector<std::string> v = {
      "plain",
      "quote \" and backslash \\ and \\\" both",
      "new\nline\r\ttab",
      std::string("nul\0byte", 8),
      "\x01\x1f\x7f ctl",
      "\xc2\x9b" "31m C1 CSI",                 // U+009B
      "line\xe2\x80\xa8sep\xe2\x80\xa9para",   // U+2028, U+2029
      "caf\xc3\xa9 \xf0\x9f\x98\x80",          // valid UTF-8 stays raw
      "bad \x80 \xff \xc0\xaf",                // invalid bytes
      "cut \xe2\x82",                          // truncated sequence at the end
      "surrogate \xed\xa0\x80",
      "too big \xf4\x90\x80\x80",
      "} ,\"prev\":\"" + kZeros + "\"}\n{",
      "",
  };
  return v;
}

// A log of `n` lines alternating requests (with nasty strings) and events.
std::vector<std::string> make_log(size_t n, AuditChain& chain) {
  std::vector<std::string> lines;
  for (size_t i = 0; i < n; ++i) {
    const std::string& s = nasty()[i % nasty().size()];
    if (i % 3 == 2) {
      lines.push_back(chain.event_line("2026-01-02T03:04:0" + std::to_string(i % 10) + ".000Z", "peer.state",
                                       {{"peer", s}, {"from", "up"}, {s + "key", "x"}}));
    } else {
      AuditRequest r = sample_request();
      r.request_id = "req-" + std::to_string(i);
      r.path = "/api/v1/tasks/" + s;
      r.reason = s;
      r.status = 200 + static_cast<int>(i);
      r.duration_ms = 0.25 * static_cast<double>(i);
      lines.push_back(chain.request_line(r));
    }
  }
  return lines;
}

std::vector<std::string> make_log(size_t n) {
  AuditChain chain;
  return make_log(n, chain);
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l;
  return s;
}

AuditVerifyResult verify(const std::string& text) {
  std::istringstream in(text);
  return verify_audit_log(in);
}

std::string strip_nl(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  return line.substr(0, line.size() - 1);
}

picojson::object parse_line(const std::string& line_without_nl) {
  picojson::value v;
  std::string err = picojson::parse(v, line_without_nl);
  REQUIRE_MESSAGE(err.empty(), line_without_nl);
  REQUIRE(v.is<picojson::object>());
  return v.get<picojson::object>();
}

// Independent strict UTF-8 check (decode, then reject overlongs, surrogates
// and code points past U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

// Whether a (possibly edited) line passes the per-line checks on its own with
// its prev still equal to `orig_prev`: then only its successor can notice.
bool self_valid(const std::string& line, const std::string& orig_prev) {
  if (line.empty() || line.front() != '{' || line.back() != '}') return false;
  picojson::value v;
  std::string err;
  try {
    auto end = picojson::parse(v, line.begin(), line.end(), &err);
    if (!err.empty() || end != line.end()) return false;
  } catch (const std::exception&) {
    return false;
  }
  if (!v.is<picojson::object>()) return false;
  const auto& o = v.get<picojson::object>();
  auto str = [&](const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->second.is<std::string>();
  };
  if (!str("ts") || !str("type") || !str("prev")) return false;
  const std::string& type = o.at("type").get<std::string>();
  if (type != "request" && type != "event") return false;
  if (type == "event" && !str("event")) return false;
  return o.at("prev").get<std::string>() == orig_prev;
}

}  // namespace

TEST_CASE("audit: known-answer vectors for sha256_hex and query_hash") {
  CHECK(fedproxy::config::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // printf 'GET\n/api\nx=1' | sha256sum
  CHECK(query_hash("GET", "/api", "x=1") == "2151eba54ee05b617ff31efab2a183a4b10d7b24e0fcc4707c523687c63526ff");
  // printf 'GET\n/api/v1/tasks\n' | sha256sum
  CHECK(query_hash("GET", "/api/v1/tasks", "") == "6d4534afce2076d297a85e3700278c5c41a1e47cd5d169ba8bf6dba70055a91f");
  CHECK(AuditChain::genesis() == kZeros);
  CHECK(AuditChain().prev() == kZeros);
}

TEST_CASE("audit: exact line format, key order and chaining (known answer)") {
  AuditChain chain;
  const std::string l1 = chain.request_line(sample_request());
  CHECK(l1 ==
        "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"type\":\"request\",\"request_id\":\"req-1\","
        "\"peer\":\"partner-labs\",\"entity_uri\":\"spiffe://partner.example/nodes/b\",\"grant\":\"g-1\","
        "\"method\":\"GET\",\"path\":\"/api/v1/tasks\",\"resource\":\"tasks\",\"decision\":\"allow\","
        "\"reason\":\"\",\"outcome\":\"completed\",\"status\":200,\"bytes_in\":12,\"bytes_out\":3456,\"duration_ms\":1.500,"
        "\"query_hash\":\"6d4534afce2076d297a85e3700278c5c41a1e47cd5d169ba8bf6dba70055a91f\","
        "\"cert_fingerprint\":\"ab:cd\",\"prev\":\"" + kZeros + "\"}\n");
  // printf '%s' "<line 1 without newline>" | sha256sum
  const std::string h1 = "6d6f348495c5c6282b96a332055203e291f19616724a528a5adc49c6f5cd5248";
  CHECK(chain.prev() == h1);
  CHECK(fedproxy::config::sha256_hex(strip_nl(l1)) == h1);

  const std::string l2 = chain.event_line("2026-01-02T03:04:06.000Z", "reload", {{"result", "ok"}, {"generation", "2"}});
  CHECK(l2 == "{\"ts\":\"2026-01-02T03:04:06.000Z\",\"type\":\"event\",\"event\":\"reload\",\"result\":\"ok\","
              "\"generation\":\"2\",\"prev\":\"" + h1 + "\"}\n");
  CHECK(chain.prev() == "46e3347fb7dbc37a2cb1c7b15dcfb3b05a9159a9476ab88a771f9e13c02533d3");

  auto res = verify(l1 + l2);
  CHECK(res.ok);
  CHECK(res.lines == 2);
  CHECK(res.bad_line == 0);
  CHECK(res.error.empty());
}

TEST_CASE("audit: numbers: duration has three decimals, non-finite becomes 0, full uint64 range") {
  AuditRequest r = sample_request();
  auto field = [](const std::string& line, const std::string& key) {
    size_t p = line.find("\"" + key + "\":");
    REQUIRE(p != std::string::npos);
    p += key.size() + 3;
    return line.substr(p, line.find(',', p) - p);
  };
  AuditChain c;
  r.duration_ms = 12.3456;
  CHECK(field(c.request_line(r), "duration_ms") == "12.346");
  r.duration_ms = 0;
  CHECK(field(c.request_line(r), "duration_ms") == "0.000");
  r.duration_ms = std::numeric_limits<double>::quiet_NaN();
  CHECK(field(c.request_line(r), "duration_ms") == "0.000");
  r.duration_ms = std::numeric_limits<double>::infinity();
  CHECK(field(c.request_line(r), "duration_ms") == "0.000");
  r.duration_ms = 1e300;  // absurd but still a JSON number
  std::string big = c.request_line(r);
  CHECK(field(big, "duration_ms").size() == 305);
  r.duration_ms = 1;
  r.bytes_in = std::numeric_limits<uint64_t>::max();
  r.bytes_out = 0;
  r.status = -1;
  std::string l = c.request_line(r);
  CHECK(field(l, "bytes_in") == "18446744073709551615");
  CHECK(field(l, "bytes_out") == "0");
  CHECK(field(l, "status") == "-1");
  parse_line(strip_nl(big));
  parse_line(strip_nl(l));
}

TEST_CASE("audit: every line is one valid JSON object; nasty strings round-trip") {
  AuditChain chain;
  for (const std::string& s : nasty()) {
    AuditRequest r = sample_request();
    r.path = s;
    r.peer = s;
    r.cert_fingerprint = s;
    std::string line = chain.request_line(r);
    REQUIRE(line.back() == '\n');
    std::string body = strip_nl(line);
    CAPTURE(body);
    CHECK(body.find('\n') == std::string::npos);
    CHECK(body.find('\r') == std::string::npos);
    for (char ch : body) CHECK(static_cast<unsigned char>(ch) >= 0x20);
    CHECK(body.find('\x7f') == std::string::npos);
    CHECK(valid_utf8(body));
    CHECK(chain_head_after(body).has_value());
    auto o = parse_line(body);
    CHECK(o.at("prev").get<std::string>().size() == 64);
    CHECK(o.at("type").get<std::string>() == "request");
    CHECK(o.at("status").get<int64_t>() == 200);
    if (valid_utf8(s)) CHECK(o.at("path").get<std::string>() == s);
    CHECK(o.at("peer") == o.at("path"));
  }
  // Exact decoding of the awkward ones (U+FFFD is EF BF BD once decoded).
  const std::string R = "\xef\xbf\xbd";
  struct Case {
    std::string in, out;
  } cases[] = {
      {std::string("a\0b", 3), std::string("a\0b", 3)},
      {"\"\\", "\"\\"},
      {"\x80", R},
      {"\xff", R},
      {"\xc0\xaf", R + R},                       // overlong: two bad bytes
      {"\xe2\x82", R},                           // truncated: one maximal subpart
      {"\xe2\x82" "A", R + "A"},
      {"\xed\xa0\x80", R + R + R},               // surrogate
      {"\xf4\x90\x80\x80", R + R + R + R},       // > U+10FFFF
      {"\xf0\x9f\x98" "x", R + "x"},
      {"\xc3\xa9\xf0\x9f\x98\x80", "\xc3\xa9\xf0\x9f\x98\x80"},
      {"\xc2\x9b\xe2\x80\xa8", "\xc2\x9b\xe2\x80\xa8"},  // escaped, decodes back
  };
  for (const auto& c : cases) {
    std::string line = strip_nl(chain.event_line("t", "e", {{"v", c.in}}));
    CAPTURE(line);
    CHECK(valid_utf8(line));
    CHECK(parse_line(line).at("v").get<std::string>() == c.out);
  }
  // Control characters come out escaped (config/json.hpp: \n as such, the others as \u00XX).
  std::string ctl = chain.event_line("t", "e", {{"v", std::string("\0\n\x1f\x7f", 4)}});
  CHECK(ctl.find("\"v\":\"\\u0000\\n\\u001f\\u007f\"") != std::string::npos);
}

TEST_CASE("audit: event fields keep their order; reserved names cannot shadow the line's keys") {
  AuditChain chain;
  std::string line = strip_nl(chain.event_line(
      "2026-01-01T00:00:00.000Z", "start",
      {{"b", "1"}, {"a", "2"}, {"prev", kZeros}, {"type", "forged"}, {"ts", "x"}, {"event", "y"}}));
  CHECK(line.find("\"event\":\"start\",\"b\":\"1\",\"a\":\"2\",\"_prev\":") != std::string::npos);
  auto o = parse_line(line);
  CHECK(o.at("type").get<std::string>() == "event");
  CHECK(o.at("event").get<std::string>() == "start");
  CHECK(o.at("_type").get<std::string>() == "forged");
  CHECK(o.at("_ts").get<std::string>() == "x");
  CHECK(o.at("_event").get<std::string>() == "y");
  CHECK(o.count("prev") == 1);
  CHECK(line.rfind("\"prev\":\"" + kZeros + "\"}") == line.size() - 74);
  CHECK(verify(line + "\n").ok);
}

TEST_CASE("audit: a chain of N lines verifies; empty file is fine") {
  for (size_t n : {0u, 1u, 2u, 17u, 200u}) {
    auto res = verify(join(make_log(n)));
    CAPTURE(n);
    CHECK(res.ok);
    CHECK(res.lines == n);
    CHECK(res.bad_line == 0);
  }
  auto lines = make_log(30);
  for (const auto& l : lines) parse_line(strip_nl(l));
}

TEST_CASE("audit: editing any single byte of any line is detected at the right line") {
  const auto lines = make_log(7);
  const size_t n = lines.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string orig_prev = parse_line(strip_nl(lines[i])).at("prev").get<std::string>();
    for (size_t pos = 0; pos < lines[i].size(); ++pos) {
      auto edited = lines;
      edited[i][pos] = static_cast<char>(edited[i][pos] ^ 0x01);
      auto res = verify(join(edited));
      CAPTURE(i);
      CAPTURE(pos);
      CAPTURE(res.error);
      const bool newline = pos == lines[i].size() - 1;
      const bool self_ok = !newline && self_valid(strip_nl(edited[i]), orig_prev);
      const uint64_t line_no = i + 1;
      if (!self_ok) {
        // Broken syntax, a changed prev, a merged line or a cut-off last line:
        // the edited line itself is reported.
        REQUIRE(!res.ok);
        CHECK(res.bad_line == line_no);
        CHECK(res.error.rfind("line " + std::to_string(line_no) + ": ", 0) == 0);
      } else if (i + 1 < n) {
        // Still a well-formed line: its successor's prev gives it away.
        REQUIRE(!res.ok);
        CHECK(res.bad_line == line_no + 1);
        CHECK(res.error == "line " + std::to_string(line_no + 1) + ": prev does not match the hash of line " +
                               std::to_string(line_no) + " (line " + std::to_string(line_no) +
                               " was edited, or a line was removed/reordered)");
      } else {
        // Limitation of any hash chain: nothing after the last line vouches
        // for it. Only a chain head recorded elsewhere can catch this.
        CHECK(res.ok);
      }
    }
  }
}

TEST_CASE("audit: a dropped line is reported where the gap is") {
  const auto lines = make_log(6);
  for (size_t i = 0; i < lines.size(); ++i) {
    auto dropped = lines;
    dropped.erase(dropped.begin() + static_cast<long>(i));
    auto res = verify(join(dropped));
    CAPTURE(i);
    CAPTURE(res.error);
    if (i == lines.size() - 1) {
      CHECK(res.ok);  // same limitation: a removed tail is invisible
      CHECK(res.lines == lines.size() - 1);
    } else if (i == 0) {
      CHECK(!res.ok);
      CHECK(res.bad_line == 1);
      CHECK(res.error ==
            "line 1: prev is not the genesis hash (the file's first line(s) were removed or edited, or it is "
            "not a whole audit log)");
    } else {
      CHECK(!res.ok);
      CHECK(res.bad_line == i + 1);
      CHECK(res.error == "line " + std::to_string(i + 1) + ": prev does not match the hash of line " +
                             std::to_string(i) + " (line " + std::to_string(i) +
                             " was edited, or a line was removed/reordered)");
    }
  }
}

TEST_CASE("audit: swapped lines are reported as a reordering") {
  const auto lines = make_log(6);
  const size_t n = lines.size();
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      auto swapped = lines;
      std::swap(swapped[i], swapped[j]);
      auto res = verify(join(swapped));
      CAPTURE(i);
      CAPTURE(j);
      CAPTURE(res.error);
      REQUIRE(!res.ok);
      CHECK(res.bad_line == i + 1);
      // Position i now holds original line j, whose prev is the hash of
      // original line j-1: now at position j when j-1 == i, else unmoved.
      const size_t points_to = (j - 1 == i) ? j + 1 : j;
      const std::string head = i == 0 ? "line 1: prev is not the genesis hash"
                                      : "line " + std::to_string(i + 1) + ": prev does not match the hash of line " +
                                            std::to_string(i);
      CHECK(res.error == head + "; it is the hash of line " + std::to_string(points_to) + " (lines were reordered)");
    }
  }
}

TEST_CASE("audit: forged lines appended to a log") {
  const auto lines = make_log(5);
  const std::string base = join(lines);
  SUBCASE("wrong prev") {
    AuditChain forger(std::string(64, 'a'));
    auto res = verify(base + forger.event_line("t", "stop", {}));
    CHECK(res.bad_line == 6);
    CHECK(res.error ==
          "line 6: prev does not match the hash of line 5 (line 5 was edited, or a line was removed/reordered)");
  }
  SUBCASE("a second chain starting at genesis") {
    AuditChain fresh;
    auto res = verify(base + fresh.event_line("t", "start", {}));
    CHECK(res.bad_line == 6);
    CHECK(res.error.rfind("line 6: prev is the genesis hash but this is not the first line", 0) == 0);
  }
  SUBCASE("replayed copy of an earlier line") {
    auto res = verify(base + lines[2]);
    CHECK(res.bad_line == 6);
    CHECK(res.error.rfind("line 6: prev does not match the hash of line 5", 0) == 0);
  }
  SUBCASE("prev as uppercase hex, or not hex") {
    std::string upper = strip_nl(lines[0]);
    std::string bad = upper;
    upper.replace(upper.size() - 66, 64, std::string(64, 'A'));
    bad.replace(bad.size() - 66, 1, "g");
    CHECK(verify(upper + "\n").error == "line 1: \"prev\" is not 64 lowercase hex digits");
    CHECK(verify(bad + "\n").error == "line 1: \"prev\" is not 64 lowercase hex digits");
  }
  SUBCASE("not audit lines") {
    CHECK(verify(base + "\n").error == "line 6: empty line");
    CHECK(verify(base + "garbage\n").error == "line 6: not a JSON object");
    CHECK(verify(base + "[1]\n").error == "line 6: not a JSON object");
    CHECK(verify(base + "{\"a\":\n").error == "line 6: not valid JSON");
    CHECK(verify(base + "{\"n\":1e999}\n").error == "line 6: not valid JSON");  // picojson would throw
    CHECK(verify(base + "{} {}\n").error == "line 6: unexpected text after the JSON object");
    CHECK(verify(base + "{\"type\":\"request\",\"prev\":\"" + kZeros + "\"}\n").error == "line 6: no \"ts\" string");
    CHECK(verify(base + "{\"ts\":\"t\",\"type\":\"x\",\"prev\":\"" + kZeros + "\"}\n").error ==
          "line 6: \"type\" is not \"request\" or \"event\"");
    CHECK(verify(base + "{\"ts\":\"t\",\"type\":\"event\",\"prev\":\"" + kZeros + "\"}\n").error ==
          "line 6: event line has no \"event\" string");
    CHECK(verify(base + "{\"ts\":\"t\",\"type\":\"event\",\"event\":\"e\"}\n").error == "line 6: no \"prev\" string");
  }
  SUBCASE("CRLF line endings") {
    std::string crlf = strip_nl(lines[0]) + "\r\n";
    CHECK(verify(crlf).error == "line 1: ends with a carriage return (were the line endings converted?)");
  }
}

TEST_CASE("audit: a truncated last line is reported") {
  const auto lines = make_log(4);
  std::string text = join(lines);
  SUBCASE("only the final newline missing") {
    text.pop_back();
    auto res = verify(text);
    CHECK(!res.ok);
    CHECK(res.bad_line == 4);
    CHECK(res.lines == 4);
    CHECK(res.error == "line 4: incomplete last line (no trailing newline: the write was cut short)");
  }
  SUBCASE("cut in the middle of the line") {
    text.resize(text.size() - lines.back().size() / 2);
    auto res = verify(text);
    CHECK(res.bad_line == 4);
    CHECK(res.error.rfind("line 4: incomplete last line", 0) == 0);
  }
  SUBCASE("an earlier problem is reported first") {
    auto res = verify(lines[0] + lines[2] + lines[1] + lines[3].substr(0, 10));
    CHECK(res.bad_line == 2);
  }
}

TEST_CASE("audit: the chain continues across a restart via chain_head_after") {
  AuditChain first;
  auto part1 = make_log(5, first);
  const std::string last = strip_nl(part1.back());
  auto head = chain_head_after(last);
  REQUIRE(head.has_value());
  CHECK(*head == fedproxy::config::sha256_hex(last));
  CHECK(*head == first.prev());

  AuditChain resumed(*head);
  auto part2 = make_log(4, resumed);
  auto res = verify(join(part1) + join(part2));
  CHECK(res.ok);
  CHECK(res.lines == 9);

  // Restarting without continuing the chain is visible.
  AuditChain fresh;
  auto bad = make_log(2, fresh);
  res = verify(join(part1) + join(bad));
  CHECK(res.bad_line == 6);

  CHECK_FALSE(chain_head_after("").has_value());
  CHECK_FALSE(chain_head_after("not json").has_value());
  CHECK_FALSE(chain_head_after(last + "\n").has_value());
  CHECK_FALSE(chain_head_after(last.substr(0, last.size() - 1)).has_value());
  CHECK_FALSE(chain_head_after("{\"ts\":\"t\",\"type\":\"other\",\"prev\":\"" + kZeros + "\"}").has_value());
  CHECK(chain_head_after("{\"ts\":\"t\",\"type\":\"event\",\"event\":\"e\",\"prev\":\"" + kZeros + "\"}").has_value());
}

TEST_CASE("audit: verify reads a large log line by line") {
  AuditChain chain;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += chain.event_line("t", "tick", {{"i", std::to_string(i)}});
  auto res = verify(text);
  CHECK(res.ok);
  CHECK(res.lines == 5000);
}

TEST_CASE("audit: format_* leave the chain where it is until advance(); a gap line chains like any other") {
  AuditChain chain;
  const std::string first = chain.event_line("t0", "start", {});
  const std::string head = chain.prev();

  // A line that never reached the file: formatted, not advanced over.
  const AuditChain::Line lost = chain.format_request(sample_request());
  CHECK(chain.prev() == head);
  CHECK(lost.hash == fedproxy::config::sha256_hex(strip_nl(lost.text)));

  const AuditChain::Line gap = chain.format_gap("t2", 3, "t1", "No space left on device");
  CHECK(gap.text == "{\"ts\":\"t2\",\"type\":\"event\",\"event\":\"gap\",\"lost\":3,\"since\":\"t1\","
                    "\"error\":\"No space left on device\",\"prev\":\"" + head + "\"}\n");
  CHECK(chain.prev() == head);
  chain.advance(gap.hash);
  CHECK(chain.prev() == gap.hash);
  const AuditChain::Line next = chain.format_event("t3", "stop", {});
  chain.advance(next.hash);

  auto obj = parse_line(strip_nl(gap.text));
  CHECK(obj.at("lost").get<double>() == 3);
  auto ok = verify(first + gap.text + next.text);
  CHECK(ok.ok);
  CHECK(ok.lines == 3);
  // A chain advanced over a line the file does not hold does not verify.
  CHECK_FALSE(verify(first + next.text).ok);
}

TEST_CASE("audit: request lines carry the outcome after the reason") {
  AuditChain chain;
  AuditRequest r = sample_request();
  r.outcome = "client_aborted";
  const std::string line = strip_nl(chain.request_line(r));
  CHECK(line.find("\"reason\":\"\",\"outcome\":\"client_aborted\",\"status\":200") != std::string::npos);
  CHECK(parse_line(line).at("outcome").get<std::string>() == "client_aborted");
}
