// libFuzzer target: the canonical request target (config/target.cpp) and the
// decision on it (policy/evaluate.cpp), against three reference parsers
// written here from their specifications, independently of fedproxy's code:
//
//   RFC 3986   %-encoding normalization of unreserved characters (§6.2.2.2),
//              remove_dot_segments (§5.2.4) literally, then %-decoding;
//   WHATWG URL the path state of the URL parser for a special scheme: "/" and
//              "\" separate, ".", "%2e", "..", ".%2e", "%2e.", "%2e%2e" (any
//              case) are dot segments, a ".." at the root stays there; then
//              %-decoding of each segment (what an app does with it);
//   servlet    Tomcat's CoyoteAdapter: ";" path parameters stripped from each
//              raw segment, %-decoding, "\" read as "/", "//" merged, dot
//              segments resolved, refused above the root.
//
// Input: [control] then the raw request-target. control bit 0: path_policy
// (0 reject, 1 rewrite); bits 1-2: the method (GET, POST, OPTIONS, HEAD);
// bit 3: a method-override header "GET" is sent along.
//
// Checked for every target canonicalize_target accepts:
//  - the bytes forwarded to the app (the canonical text, or the limit
//    rewrite) read under all three references as the same decoded segment
//    list as the canonical path, and routing that list (an independent
//    segment-wise, ASCII case-insensitive longest-prefix router) gives the
//    resource policy decided on (or no route when policy found none);
//  - the canonical form is what RFC 3986 makes of the raw target ("//"
//    merged under rewrite), and under path_policy reject all three
//    references already agree on the raw target;
//  - canonicalizing the canonical text (or the rewrite) returns it
//    unchanged, under both policies, with no authority.
// And for every target it refuses: a refusal, never a partial result.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "policy/policy.hpp"
#include "config/target.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace fedproxy::config;
using namespace fedproxy::policy;

namespace {

using Segments = std::vector<std::string>;

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr const char* kPeerUri = "spiffe://partner-labs.example/nodes/primary";
constexpr uint32_t kMaxRows = 50;

// The routes of the policy under test: nested prefixes, a prefix ending in
// "/", escapes and case in prefixes. (prefix, resource)
constexpr std::pair<const char*, const char*> kRoutes[] = {
    {"/api/v1/tasks", "tasks"},          {"/api/v1/tasks/archive", "archive"},
    {"/api/v1/credentials", "credentials"}, {"/static/", "static"},
    {"/caf%C3%A9", "cafe"},              {"/a/b%20c", "space"},
    {"/API/V2", "v2"},                   {"/x:y/@z", "punct"},
};

std::string config_json() {
  std::string routes, resources;
  for (const auto& [prefix, resource] : kRoutes) {
    routes += std::string(routes.empty() ? "" : ",") + R"({"prefix": ")" + prefix + R"(", "resource": ")" + resource + "\"}";
    if (std::string_view(resource) != "archive") {
      resources += std::string(resources.empty() ? "" : ",") + "\"" + resource + "\"";
    }
  }
  return R"({"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
    "peers": [{"org": "partner-labs", "entity_uri": ")" + std::string(kPeerUri) + R"("}],
    "routes": [)" + routes + R"(],
    "grants": [{"id": "g", "peer": "partner-labs", "resources": [)" + resources + R"(],
      "excluded_resources": ["archive"], "approved_sensitive": true,
      "methods": ["GET", "HEAD", "POST", "OPTIONS"], "max_rows_per_query": )" + std::to_string(kMaxRows) +
         R"(, "status": "active"}]})";
}

const Snapshot& snapshot() {
  static const std::shared_ptr<const Snapshot> snap = [] {
    ConfigResult c = parse_config(config_json(), "/");
    FUZZ_CHECK(c.config.has_value(), "the fuzz policy does not parse");
    CompileResult r = compile_policy(*c.config, {});
    FUZZ_CHECK(r.snapshot != nullptr, "the fuzz policy does not compile");
    return r.snapshot;
  }();
  return *snap;
}

// ---- %-decoding, as every reference does it (its own, on purpose) ----------

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes every well-formed escape; others stay as they are.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Segments split_decoded(std::string_view path) {  // path starts with "/"
  Segments out;
  size_t start = 1;
  for (;;) {
    const size_t slash = path.find('/', start);
    out.push_back(percent_decode(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start)));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

std::string_view path_of(std::string_view origin_form) { return origin_form.substr(0, origin_form.find('?')); }

// ---- RFC 3986 ------------------------------------------------------------------

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// §6.2.2.2: escapes of unreserved characters are those characters.
std::string decode_unreserved(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0 &&
        unreserved(static_cast<unsigned char>(hex(s[i + 1]) * 16 + hex(s[i + 2])))) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// §5.2.4, step by step.
std::string remove_dot_segments(std::string in) {
  std::string out;
  auto pop_last = [&out] {
    const size_t k = out.rfind('/');
    out.erase(k == std::string::npos ? 0 : k);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.replace(0, 4, "/");
      pop_last();
    } else if (in == "/..") {
      in = "/";
      pop_last();
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', in[0] == '/' ? 1 : 0);
      out += in.substr(0, next);
      in.erase(0, next);
    }
  }
  return out;
}

Segments rfc3986(std::string_view path) { return split_decoded(remove_dot_segments(decode_unreserved(path))); }

// ---- WHATWG URL (special scheme) -------------------------------------------------

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] + 32) : a[i];
    if (x != b[i]) return false;
  }
  return true;
}
bool single_dot(std::string_view b) { return b == "." || iequal(b, "%2e"); }
bool double_dot(std::string_view b) {
  return b == ".." || iequal(b, ".%2e") || iequal(b, "%2e.") || iequal(b, "%2e%2e");
}

Segments whatwg(std::string_view path) {
  std::vector<std::string> url_path;
  std::string buffer;
  // "path start state" consumed the first "/" (or "\").
  for (size_t i = 1; i <= path.size(); ++i) {
    const bool eof = i == path.size();
    const char c = eof ? '\0' : path[i];
    if (eof || c == '/' || c == '\\') {
      if (double_dot(buffer)) {
        if (!url_path.empty()) url_path.pop_back();
        if (eof) url_path.emplace_back();
      } else if (single_dot(buffer) && eof) {
        url_path.emplace_back();
      } else if (!single_dot(buffer)) {
        url_path.push_back(buffer);
      }
      buffer.clear();
    } else {
      buffer += c;  // the path percent-encode set only re-encodes: decoded below alike
    }
  }
  Segments out;
  for (const std::string& s : url_path) out.push_back(percent_decode(s));
  return out;
}

// ---- servlet (Tomcat CoyoteAdapter) --------------------------------------------

std::optional<Segments> servlet(std::string_view path) {
  // parsePathParameters: ";..." up to the next "/" of the raw URI goes.
  std::string stripped;
  for (size_t i = 0; i < path.size();) {
    if (path[i] == ';') {
      while (i < path.size() && path[i] != '/') ++i;
      continue;
    }
    stripped += path[i++];
  }
  std::string p = percent_decode(stripped);
  if (p.find('\0') != std::string::npos) return std::nullopt;  // Tomcat refuses a decoded NUL
  std::replace(p.begin(), p.end(), '\\', '/');
  // normalize(): merge "//", then "/./" and "/../" (refused above the root).
  std::string merged;
  for (const char c : p) {
    if (c == '/' && !merged.empty() && merged.back() == '/') continue;
    merged += c;
  }
  std::vector<std::string> segs;
  size_t start = 1;
  for (;;) {
    const size_t slash = merged.find('/', start);
    const std::string seg = merged.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    const bool last = slash == std::string::npos;
    if (seg == ".") {
      if (last) segs.emplace_back();
    } else if (seg == "..") {
      if (segs.empty()) return std::nullopt;
      segs.pop_back();
      if (last) segs.emplace_back();
    } else {
      segs.push_back(seg);
    }
    if (last) break;
    start = slash + 1;
  }
  return segs;
}

// ---- an independent router ---------------------------------------------------------

bool segment_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto low = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (low(a[i]) != low(b[i])) return false;
  }
  return true;
}

// Longest prefix (by its text) whose decoded segments lead `segs`, compared
// ASCII case-insensitively; a prefix ending in "/" matches anything below.
std::string_view route_of(const Segments& segs) {
  std::string_view best;
  size_t best_len = 0;
  for (const auto& [prefix, resource] : kRoutes) {
    const Segments p = split_decoded(prefix);
    const bool dir = p.back().empty();
    const size_t fixed = dir ? p.size() - 1 : p.size();
    if (segs.size() < p.size()) continue;
    bool match = true;
    for (size_t k = 0; k < fixed && match; ++k) match = segment_iequal(p[k], segs[k]);
    if (match && std::string_view(prefix).size() > best_len) {
      best = resource;
      best_len = std::string_view(prefix).size();
    }
  }
  return best;
}

// "//" merged: empty segments dropped except a final one.
Segments merge_empty(Segments s) {
  Segments out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].empty() && i + 1 < s.size()) continue;
    out.push_back(std::move(s[i]));
  }
  if (out.empty()) out.emplace_back();
  return out;
}

// All three references read `path` as `want`, and route it to `resource`
// (when policy got as far as routing).
void check_readings(std::string_view path, const Segments& want, std::optional<std::string_view> resource,
                    const char* what) {
  FUZZ_CHECK(rfc3986(path) == want, what);
  FUZZ_CHECK(whatwg(path) == want, what);
  const std::optional<Segments> s = servlet(path);
  FUZZ_CHECK(s.has_value() && *s == want, what);
  if (resource) {
    FUZZ_CHECK(route_of(want) == *resource, "the references route the forwarded path elsewhere than policy did");
  }
}

void check_fixed_point(std::string_view text, std::string_view method) {
  for (PathPolicy p : {PathPolicy::reject, PathPolicy::rewrite}) {
    const TargetResult again = canonicalize_target(text, method, p);
    FUZZ_CHECK(again.status == TargetStatus::ok, "the canonical text is refused when read again");
    FUZZ_CHECK(again.target.text == text, "the canonical text changes when read again");
    FUZZ_CHECK(again.target.authority.empty(), "the canonical text has an authority");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  const uint8_t control = data[0];
  const std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
  const PathPolicy policy = (control & 1) ? PathPolicy::rewrite : PathPolicy::reject;
  static constexpr std::string_view kMethods[] = {"GET", "POST", "OPTIONS", "HEAD"};
  const std::string_view method = kMethods[(control >> 1) & 3];

  const TargetResult r = canonicalize_target(raw, method, policy);
  if (r.status != TargetStatus::ok) {
    FUZZ_CHECK(r.detail != nullptr && r.detail[0] != '\0', "a refusal without a reason");
    FUZZ_CHECK(r.target.text.empty(), "a refusal with a partial result");
    return 0;
  }
  const CanonicalTarget& t = r.target;
  check_fixed_point(t.text, method);
  if (t.asterisk()) {
    FUZZ_CHECK(method == "OPTIONS" && raw == "*", "\"*\" for another method or target");
    return 0;
  }

  // The decision on the canonical target, as the ingress makes it.
  static constexpr std::string_view kOverride[] = {"GET"};
  Subject subject;
  const std::string uri = kPeerUri;
  subject.uri_sans = std::span<const std::string>(&uri, 1);
  RequestInfo info;
  info.method = method;
  info.set_target(t);
  if (control & 8) info.method_overrides = kOverride;
  RateLimiter limiter;
  const Decision d = evaluate(snapshot(), limiter, subject, info, kNow);
  // The grant allows every method sent and every route but "archive"; a
  // _method parameter in the query may name another method.
  FUZZ_CHECK(d.code == DenyCode::none || d.code == DenyCode::no_route || d.code == DenyCode::resource_excluded ||
                 d.code == DenyCode::method_not_allowed,
             "an unexpected denial for a fixed grant");
  const std::optional<std::string_view> decided =
      d.code == DenyCode::method_not_allowed ? std::nullopt : std::optional<std::string_view>(d.resource);
  const std::string_view forwarded = d.rewritten_target ? std::string_view(*d.rewritten_target) : std::string_view(t.text);
  if (d.rewritten_target) {
    check_fixed_point(forwarded, method);
    FUZZ_CHECK(path_of(forwarded) == t.path(), "the limit rewrite changed the path");
  }

  // What the app reads from the forwarded bytes is what policy decided on.
  const Segments canonical = split_decoded(t.path());
  check_readings(path_of(forwarded), canonical, decided, "a reference reads the forwarded path differently");

  // The canonical path is RFC 3986's reading of the raw one ("//" merged
  // under rewrite); under reject every reference already read the raw
  // target alike, so nothing was left to resolve.
  const std::string_view raw_path = [&] {
    std::string_view p = raw;
    if (!p.starts_with('/')) {  // absolute-form: after "scheme://authority"
      const size_t a = p.find("//");
      const size_t slash = p.find_first_of("/?", a + 2);
      p = slash == std::string_view::npos ? std::string_view("/") : p.substr(slash);
      if (p.starts_with('?')) p = "/";
    }
    return path_of(p);
  }();
  FUZZ_CHECK(merge_empty(rfc3986(raw_path)) == canonical, "the canonical path is not RFC 3986's reading of the raw one");
  if (policy == PathPolicy::reject) {
    check_readings(raw_path, canonical, decided, "an accepted raw target is read differently by a reference");
  }
  return 0;
}
