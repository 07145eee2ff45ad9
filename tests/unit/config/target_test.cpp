// canonicalize_target (SPEC §4): a table of request-targets — every class
// of path confusion (empty and dot segments in all their spellings,
// encoded separators, backslashes, path parameters, NUL and controls,
// fragments, raw high bytes, overlong UTF-8, case variants), every target
// form (origin, absolute, authority, asterisk) and benign targets — with
// the canonical form or the refusal under both path policies; then the
// invariants every accepted target keeps (fixed point, one copy).

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/unit/policy/alloc_counter.hpp"
#include "config/target.hpp"

using namespace fedproxy::config;
using namespace std::string_literals;

namespace {

// Expected outcomes other than a canonical text.
const std::string kAmb = "<ambiguous_path>";
const std::string kBad = "<bad_request>";

struct Row {
  std::string raw;
  std::string reject;   // canonical text, kAmb or kBad, under path_policy "reject"
  std::string rewrite;  // the same under "rewrite"
  std::string authority = "";
  std::string method = "GET";
};

// The same outcome under both policies.
Row both(std::string raw, std::string out, std::string authority = "", std::string method = "GET") {
  return {raw, out, out, std::move(authority), std::move(method)};
}

std::string outcome(const TargetResult& r) {
  switch (r.status) {
    case TargetStatus::ok: return r.target.text;
    case TargetStatus::ambiguous_path: return kAmb;
    case TargetStatus::bad_request: return kBad;
  }
  return "?";
}

std::vector<Row> table() {
  return {
      // ---- benign: unchanged -------------------------------------------------
      both("/", "/"),
      both("/api/v1/tasks", "/api/v1/tasks"),
      both("/api/v1/tasks/", "/api/v1/tasks/"),
      both("/api/v1/tasks/42", "/api/v1/tasks/42"),
      both("/api/v1/tasks?limit=10", "/api/v1/tasks?limit=10"),
      both("/api/v1/tasks?", "/api/v1/tasks?"),
      both("/?", "/?"),
      both("/api/v1/tasks?a=1&b=2;c=3", "/api/v1/tasks?a=1&b=2;c=3"),
      both("/api/v1/tasks?q=%2F%2e%2E", "/api/v1/tasks?q=%2F%2e%2E"),
      both("/api/v1/tasks?next=/../../credentials", "/api/v1/tasks?next=/../../credentials"),
      both("/api/v1/tasks?x=a%20b+c", "/api/v1/tasks?x=a%20b+c"),
      both("/a?%2F=%5C", "/a?%2F=%5C"),
      both("/a??b", "/a??b"),
      both("/a?b//../c;d", "/a?b//../c;d"),
      both("/a-b_c.d~e/f", "/a-b_c.d~e/f"),
      both("/a/.../b", "/a/.../b"),
      both("/a/..b/c", "/a/..b/c"),
      both("/a/b../c", "/a/b../c"),
      both("/a/.b/c", "/a/.b/c"),
      both("/.well-known/fedproxy-manifest.json", "/.well-known/fedproxy-manifest.json"),
      both("/users/@me", "/users/@me"),
      both("/a:b/c", "/a:b/c"),
      both("/a/b!$&'()*+,=c", "/a/b!$&'()*+,=c"),
      both("/files/%C3%A9t%C3%A9", "/files/%C3%A9t%C3%A9"),
      both("/a/%20b", "/a/%20b"),
      both("/a/%25", "/a/%25"),
      both("/a/%252e%252e/b", "/a/%252e%252e/b"),  // decoded once: a name, not a dot segment
      both("/a%23b", "/a%23b"),                    // an encoded "#" is data
      both("/a/%3F", "/a/%3F"),
      both("/API/V1/TASKS", "/API/V1/TASKS"),  // case is kept; routes compare without it
      // ---- benign: only escapes normalised ----------------------------------
      both("/files/%c3%a9", "/files/%C3%A9"),
      both("/a/%41", "/a/A"),
      both("/api/v1/%74asks", "/api/v1/tasks"),
      both("/api/v1/%54asks", "/api/v1/Tasks"),
      both("/a/%7e%2d%5f", "/a/~-_"),
      both("/a/%2E%2Ex", "/a/..x"),
      both("/a/x%2E", "/a/x."),
      both("/a/%7b%7D", "/a/%7B%7D"),
      both("/a/%3a%40", "/a/%3A%40"),
      both("/a/%e2%82%ac", "/a/%E2%82%AC"),
      both("/a/%f0%9f%98%80", "/a/%F0%9F%98%80"),
      both("/a/%c3%a9%41", "/a/%C3%A9A"),
      both("/a/%ef%bf%bd", "/a/%EF%BF%BD"),
      // bytes RFC 3986 does not allow raw in a path, read alike by everyone
      both("/a/{b}", "/a/%7Bb%7D"),
      both("/a/b|c", "/a/b%7Cc"),
      both("/a/\"q\"", "/a/%22q%22"),
      both("/a/<x>", "/a/%3Cx%3E"),
      both("/a/[1]", "/a/%5B1%5D"),
      both("/a/^`", "/a/%5E%60"),
      // ---- empty segments ("//") ----------------------------------------------
      {"//", kAmb, "/"},
      {"//api/v1/tasks", kAmb, "/api/v1/tasks"},
      {"/api//v1/tasks", kAmb, "/api/v1/tasks"},
      {"/api/v1/tasks//", kAmb, "/api/v1/tasks/"},
      {"/api/v1/tasks//1", kAmb, "/api/v1/tasks/1"},
      {"/a///b", kAmb, "/a/b"},
      {"//a", kAmb, "/a"},
      // an empty segment is a segment (RFC 3986 §5.2.4): ".." removes it
      {"/api/v1/credentials//../tasks", kAmb, "/api/v1/credentials/tasks"},
      {"/a//b/../c", kAmb, "/a/c"},
      {"/a//..", kAmb, "/a/"},
      {"/a//../..", kAmb, "/"},
      {"/.//../", kAmb, "/"},
      {"//%2e%2e/", kAmb, "/"},
      {"//..", kAmb, "/"},
      {"/api//v1/tasks?x=//", kAmb, "/api/v1/tasks?x=//"},
      // ---- dot segments ---------------------------------------------------------
      {"/.", kAmb, "/"},
      {"/./", kAmb, "/"},
      {"/a/.", kAmb, "/a/"},
      {"/a/./b", kAmb, "/a/b"},
      {"/a/./b/./", kAmb, "/a/b/"},
      {"/a/b/..", kAmb, "/a/"},
      {"/a/b/../", kAmb, "/a/"},
      {"/a/..", kAmb, "/"},
      {"/a/b/../c", kAmb, "/a/c"},
      {"/a/b/c/../../d", kAmb, "/a/d"},
      {"/a/./../b", kAmb, "/b"},
      {"/api/v1/tasks/../credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/%2e%2e/credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/%2E%2E/credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/.%2e/credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/%2e./credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/%2E./credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/.%2E/credentials", kAmb, "/api/v1/credentials"},
      {"/api/v1/tasks/%2e/1", kAmb, "/api/v1/tasks/1"},
      {"/api/v1/tasks/%2E/1", kAmb, "/api/v1/tasks/1"},
      {"/a/%2E", kAmb, "/a/"},
      {"/a/b/%2e%2e", kAmb, "/a/"},
      {"/Api/v1/Tasks/%2e%2E", kAmb, "/Api/v1/"},
      {"/api/v1/tasks/../tasks?limit=1", kAmb, "/api/v1/tasks?limit=1"},
      {"/api/v1/notes/../tasks/archive/x", kAmb, "/api/v1/tasks/archive/x"},
      // ---- climbing above "/": refused under both -------------------------------
      both("/..", kAmb),
      both("/../", kAmb),
      both("/../api/v1/tasks", kAmb),
      both("/%2e%2e/etc/passwd", kAmb),
      both("/%2E%2E", kAmb),
      both("/a/../..", kAmb),
      both("/a/b/../../../c", kAmb),
      both("/api/%2E%2E/%2e%2e/..", kAmb),
      both("/a/.%2E/%2e./x", kAmb),
      both("/./../x", kAmb),
      // ---- encoded "/" and "\" ---------------------------------------------------
      both("/api/v1/tasks/..%2fcredentials", kAmb),
      both("/api/v1/tasks%2F..%2Fcredentials", kAmb),
      both("/a%2fb", kAmb),
      both("/api/v1%2Ftasks", kAmb),
      both("/a/%5c", kAmb),
      both("/a/%5C", kAmb),
      both("/a/..%5C..%5Cb", kAmb),
      // ---- raw "\" ----------------------------------------------------------------
      both("/a\\b", kAmb),
      both("/api/v1/tasks/..\\credentials", kAmb),
      both("/a\\..\\b", kAmb),
      both("/\\", kAmb),
      both("/\\\\evil.example/x", kAmb),
      // ---- ";" path parameters (servlet containers strip them) ---------------------
      both("/api/v1/tasks/..;/credentials", kAmb),
      both("/api/v1/tasks;jsessionid=ABC", kAmb),
      both("/api/v1/tasks/1;a=b", kAmb),
      both("/;/api/v1/credentials", kAmb),
      both("/api/v1/credentials;/../tasks", kAmb),
      both("/a/%3B", kAmb),
      both("/a/..%3B/b", kAmb),
      // ---- NUL and controls, encoded ----------------------------------------------
      both("/a%00", kAmb),
      both("/a/%00/b", kAmb),
      both("/api/v1/tasks%00.json", kAmb),
      both("/a%0d%0aX-Injected:%20x", kAmb),
      both("/a%09", kAmb),
      both("/a%7f", kAmb),
      both("/a%1F", kAmb),
      both("/a?b=%00", kAmb),
      both("/a?b=%0A", kAmb),
      both("/a?b=%7F", kAmb),
      // ---- raw controls, space, DEL --------------------------------------------------
      both("/a\0b"s, kAmb),
      both("/a\tb", kAmb),
      both("/a\rb", kAmb),
      both("/a\nb", kAmb),
      both("/a\x7f", kAmb),
      both("/a b", kAmb),
      both("/a?b=\x01", kAmb),
      // ---- raw "#" --------------------------------------------------------------------
      both("/a#b", kAmb),
      both("/api/v1/tasks#/../credentials", kAmb),
      both("/a?b#c", kAmb),
      both("/#", kAmb),
      // ---- raw bytes >= 0x80 ----------------------------------------------------------
      both("/caf\xc3\xa9", kAmb),
      both("/a\xff", kAmb),
      both("/a?q=\xc3\xa9", kAmb),
      both("/\xc0\xae\xc0\xae/etc", kAmb),
      // ---- encoded bytes >= 0x80 that are not UTF-8 -------------------------------------
      both("/%c0%ae%c0%ae/etc", kAmb),  // overlong "."
      both("/a/%c0%af", kAmb),          // overlong "/"
      both("/a/%C1%9C", kAmb),          // overlong "\"
      both("/a/%e0%80%ae", kAmb),       // overlong, 3 bytes
      both("/a/%f0%80%80%ae", kAmb),    // overlong, 4 bytes
      both("/a/%ed%a0%80", kAmb),       // surrogate
      both("/a/%f4%90%80%80", kAmb),    // above U+10FFFF
      both("/a/%c3", kAmb),             // truncated
      both("/a/%c3/b", kAmb),           // cut by a segment end
      both("/a/%c3a", kAmb),            // cut by a raw byte
      both("/a/%c3%2e", kAmb),          // cut by an escape of an ASCII byte
      both("/a/%80", kAmb),             // lone continuation byte
      both("/a/%ff", kAmb),
      // ---- malformed escapes -----------------------------------------------------------
      both("/a/%zz", kBad),
      both("/a/%", kBad),
      both("/a/%2", kBad),
      both("/a/%2/b", kBad),
      both("/a/%g0", kBad),
      both("/a/%%32%65", kBad),
      both("/a/%u002e", kBad),  // IIS %u escapes
      both("/a?x=%zz", kAmb),
      both("/a?x=%", kAmb),
      both("/a?x=%4", kAmb),
      // ---- target forms -----------------------------------------------------------------
      both("", kBad),
      both("*", "*", "", "OPTIONS"),
      both("*", kBad),
      both("*", kBad, "", "HEAD"),
      both("api/v1/tasks", kBad),
      both("example.com:443", kBad),
      both("acme:8443", kBad, "", "CONNECT"),
      both("ftp://acme/api", kBad),
      both("file:///etc/passwd", kBad),
      both("javascript:alert(1)", kBad),
      both("http:/api", kBad),
      both("http:", kBad),
      both("?x=1", kBad),
      // absolute-form: origin-form + the authority for Host (RFC 9112 §3.2.2)
      both("http://acme", "/", "acme"),
      both("http://acme/", "/", "acme"),
      both("http://acme/api/v1/tasks?limit=5", "/api/v1/tasks?limit=5", "acme"),
      both("HTTPS://ACME.example:8443/api/v1/Tasks", "/api/v1/Tasks", "acme.example:8443"),
      both("hTtP://acme?x=1", "/?x=1", "acme"),
      both("http://[::1]:8443/a", "/a", "[::1]:8443"),
      both("http://[2001:DB8::1]/a", "/a", "[2001:db8::1]"),
      both("http://10.0.0.1:80/a/%61", "/a/a", "10.0.0.1:80"),
      both("http://a_b.example/x", "/x", "a_b.example"),
      {"http://acme/api//v1/../tasks", kAmb, "/api/tasks", "acme"},
      both("http://acme/a\\b", kAmb),
      both("http://acme#x", kAmb),
      both("http://acme/a#x", kAmb),
      both("http://acme/%2e%2e/x", kAmb),
      both("http://", kBad),
      both("http:///x", kBad),
      both("https://?x", kBad),
      both("http://user:pw@acme/api/v1/tasks", kBad),
      both("http://@acme/x", kBad),
      both("http://acme:/a", kBad),
      both("http://acme:99999/a", kBad),
      both("http://acme:8x/a", kBad),
      both("http://ac%6de/a", kBad),
      both("http://acme\\@evil/x", kBad),
      both("http://[v1.x]/a", kBad),
      both("http://[]/a", kBad),
      both("http://[::1/a", kBad),
      both("http://acme:80:80/a", kBad),
  };
}

}  // namespace

TEST_CASE("canonicalize_target: the table, under both path policies") {
  const std::vector<Row> rows = table();
  CHECK(rows.size() >= 150);
  for (const Row& row : rows) {
    for (PathPolicy policy : {PathPolicy::reject, PathPolicy::rewrite}) {
      const bool reject = policy == PathPolicy::reject;
      INFO("target " << row.raw << ", method " << row.method << ", policy " << (reject ? "reject" : "rewrite"));
      const TargetResult r = canonicalize_target(row.raw, row.method, policy);
      CHECK(outcome(r) == (reject ? row.reject : row.rewrite));
      if (r.status != TargetStatus::ok) {
        CHECK(std::string(r.detail).size() > 8);
        continue;
      }
      CHECK(r.target.authority == row.authority);
    }
  }
}

TEST_CASE("canonicalize_target: every accepted target is a fixed point, its parts consistent") {
  for (const Row& row : table()) {
    for (PathPolicy policy : {PathPolicy::reject, PathPolicy::rewrite}) {
      const TargetResult r = canonicalize_target(row.raw, row.method, policy);
      if (r.status != TargetStatus::ok) continue;
      const CanonicalTarget& t = r.target;
      INFO("target " << row.raw << " → " << t.text);
      if (t.asterisk()) {
        CHECK(t.path() == "*");
        CHECK_FALSE(t.has_query);
        continue;
      }
      REQUIRE(t.path_len <= t.text.size());
      CHECK(t.path().front() == '/');
      CHECK(t.path().find('?') == std::string_view::npos);
      CHECK(t.has_query == (t.path_len < t.text.size()));
      if (t.has_query) CHECK(t.text[t.path_len] == '?');
      CHECK(std::string(t.path()) + (t.has_query ? "?" + std::string(t.query()) : "") == t.text);
      // Canonical under the strictest policy: no dot or empty segment left.
      for (PathPolicy again : {PathPolicy::reject, PathPolicy::rewrite}) {
        const TargetResult r2 = canonicalize_target(t.text, row.method, again);
        REQUIRE(r2.status == TargetStatus::ok);
        CHECK(r2.target.text == t.text);
        CHECK(r2.target.authority.empty());
      }
    }
  }
}

TEST_CASE("canonicalize_target: an already-canonical target costs one allocation") {
  const std::string raw = "/api/v1/tasks/42/comments?limit=10&sort=desc&page=3";
  (void)canonicalize_target(raw, "GET", PathPolicy::reject);  // warm-up
  const long before = allocation_count();
  TargetResult r = canonicalize_target(raw, "GET", PathPolicy::reject);
  CHECK(allocation_count() - before == 1);
  CHECK(r.target.text == raw);
  CHECK(r.target.path() == "/api/v1/tasks/42/comments");
  CHECK(r.target.query() == "limit=10&sort=desc&page=3");
}

TEST_CASE("canonicalize_target: the path is split from the query at the first \"?\"") {
  const TargetResult r = canonicalize_target("/a/%2e%2E/b?x=/../%2e?y", "GET", PathPolicy::rewrite);
  REQUIRE(r.status == TargetStatus::ok);
  CHECK(r.target.path() == "/b");
  CHECK(r.target.query() == "x=/../%2e?y");
  CHECK(r.target.has_query);
  const TargetResult none = canonicalize_target("/b", "GET", PathPolicy::rewrite);
  CHECK_FALSE(none.target.has_query);
  CHECK(none.target.query().empty());
}
