// canonicalize_target (SPEC §4, RFC 9112 §3.2, RFC 3986 §5.2.4 and §6.2.2).
//
// The rule behind every refusal: fedproxy forwards one text, and every
// common parser (RFC 3986 resolvers, WHATWG URL, servlet containers,
// WSGI/CGI, Windows-flavoured servers) must read the same path from it as
// policy did. A byte that some of them treat as a separator, a parameter
// start, an end of string or a different character (";", "\", "%2F",
// "%5C", NUL and other controls, "#", raw bytes >= 0x80, overlong UTF-8) is
// refused rather than guessed at. Dot segments and empty segments are read
// alike by everyone only once resolved, so they are refused (path_policy
// "reject") or resolved here and forwarded resolved ("rewrite").
//
// The output holds no dot segment, no empty segment but a final one, no
// escape of an unreserved character, upper-case hex in every escape, and
// no byte outside RFC 3986's pchar set raw: canonicalizing it again
// returns it unchanged.

#include "config/target.hpp"

#include "config/uri_chars.hpp"
#include "config/validate.hpp"

namespace fedproxy::config {

namespace {

using detail::append_escape;
using detail::hex_value;
using detail::is_control;
using detail::is_unreserved;

struct Refusal {
  TargetStatus status = TargetStatus::ok;
  const char* detail = "";
  explicit operator bool() const { return status != TargetStatus::ok; }
};

constexpr Refusal ambiguous(const char* detail) { return {TargetStatus::ambiguous_path, detail}; }
constexpr Refusal malformed(const char* detail) { return {TargetStatus::bad_request, detail}; }

TargetResult refused(Refusal r) {
  TargetResult out;
  out.status = r.status;
  out.detail = r.detail;
  return out;
}

// What a raw byte of a request-target is, read in its path.
enum class PathByte : uint8_t {
  plain,    // pchar or "/": kept as it is
  escape,   // not allowed raw by RFC 3986 but read alike by everyone: written %XX
  percent,  // starts an escape
  refuse,   // ";" and "\" (parameters, separators for some parsers)
  never,    // refused anywhere in a target (screen_raw_bytes)
};

// A plain array: indexed per byte on every request, without bounds checks.
struct PathByteTable {
  PathByte of[256];
};

constexpr PathByteTable make_path_bytes() {
  PathByteTable t{};
  for (int c = 0; c < 256; ++c) {
    const auto b = static_cast<unsigned char>(c);
    PathByte k = PathByte::escape;
    if (is_unreserved(b)) k = PathByte::plain;
    for (char p : std::string_view("!$&'()*+,=:@/")) {
      if (b == static_cast<unsigned char>(p)) k = PathByte::plain;
    }
    if (b == '%') k = PathByte::percent;
    if (b == ';' || b == '\\') k = PathByte::refuse;
    if (b <= 0x20 || b == 0x7f || b >= 0x80 || b == '#') k = PathByte::never;
    t.of[c] = k;
  }
  return t;
}
constexpr PathByteTable kPathBytes = make_path_bytes();

// Bytes no part of a request-target may hold raw, in any form. Space and
// controls end or corrupt the request line for some reader; "#" starts a
// fragment (a client never sends one: anything after it is read by some
// servers and dropped by others); bytes >= 0x80 are decoded as Latin-1 by
// some and as UTF-8 by others.
Refusal screen_raw_bytes(std::string_view raw) {
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (kPathBytes.of[c] != PathByte::never) continue;
    if (c >= 0x80) return ambiguous("a raw byte above 0x7F in the request-target");
    if (c == '#') return ambiguous("a raw \"#\" in the request-target");
    return ambiguous("a raw control byte or space in the request-target");
  }
  return {};
}

// Bytes >= 0x80 reach the path only as escapes, and only as well-formed
// UTF-8 (RFC 3629: no overlong form such as %C0%AE for ".", no surrogate,
// nothing above U+10FFFF), complete within one segment.
class Utf8Escapes {
 public:
  bool feed(unsigned char b) {
    if (need_ == 0) {
      lo_ = 0x80;
      hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need_ = 2;
        if (b == 0xE0) lo_ = 0xA0;  // overlong
        if (b == 0xED) hi_ = 0x9F;  // surrogates
      } else if (b >= 0xF0 && b <= 0xF4) {
        need_ = 3;
        if (b == 0xF0) lo_ = 0x90;  // overlong
        if (b == 0xF4) hi_ = 0x8F;  // above U+10FFFF
      } else {
        return false;
      }
      return true;
    }
    if (b < lo_ || b > hi_) return false;
    lo_ = 0x80;
    hi_ = 0xBF;
    --need_;
    return true;
  }
  bool pending() const { return need_ != 0; }

 private:
  int need_ = 0;
  unsigned char lo_ = 0x80, hi_ = 0xBF;
};

constexpr const char* kBadUtf8 = "encoded bytes in the path that are not UTF-8 (overlong or broken sequence)";

// True when `path` is already canonical under both policies: only pchar
// bytes, no escape, no dot segment, no empty segment but a final one.
// Such a path is copied as it is (the common case).
bool is_plain_canonical(std::string_view path) {
  const char* const end = path.data() + path.size();
  const char* seg = path.data() + 1;  // start of the current segment
  for (const char* p = seg;; ++p) {
    if (p != end && *p != '/') {
      if (kPathBytes.of[static_cast<unsigned char>(*p)] != PathByte::plain) return false;
      continue;
    }
    const size_t n = static_cast<size_t>(p - seg);
    const bool dots = n >= 1 && n <= 2 && seg[0] == '.' && seg[n - 1] == '.';  // "." or ".."
    if (dots || (n == 0 && p != end)) return false;
    if (p == end) return true;
    seg = p + 1;
  }
}

// Writes the canonical form of `in` (which starts with "/") to `out`
// (empty on entry): one segment at a time, escapes decoded or upper-cased,
// dot segments resolved as RFC 3986 §5.2.4 does (an empty segment is a
// segment), then empty segments merged.
Refusal canonicalize_path(std::string_view in, PathPolicy policy, std::string& out) {
  const bool rewrite = policy == PathPolicy::rewrite;
  size_t i = 1;
  for (;;) {
    const size_t seg_start = out.size();
    out += '/';
    Utf8Escapes utf8;
    size_t j = i;
    for (; j < in.size() && in[j] != '/'; ++j) {
      const auto c = static_cast<unsigned char>(in[j]);
      const PathByte kind = kPathBytes.of[c];
      if (kind == PathByte::percent) {
        const int hi = j + 2 < in.size() ? hex_value(in[j + 1]) : -1;
        const int lo = hi >= 0 ? hex_value(in[j + 2]) : -1;
        if (lo < 0) return malformed("a malformed %-escape in the path");
        const auto b = static_cast<unsigned char>(hi * 16 + lo);
        j += 2;
        if (b == '/') return ambiguous("an encoded \"/\" (%2F) in the path");
        if (b == '\\') return ambiguous("an encoded \"\\\" (%5C) in the path");
        if (b == ';') return ambiguous("an encoded \";\" (%3B) in the path (path parameters)");
        if (is_control(b)) return ambiguous("an encoded control byte in the path");
        if (b >= 0x80) {
          if (!utf8.feed(b)) return ambiguous(kBadUtf8);
          append_escape(out, b);
          continue;
        }
        if (utf8.pending()) return ambiguous(kBadUtf8);
        if (is_unreserved(b)) {
          out += static_cast<char>(b);
        } else {
          append_escape(out, b);
        }
        continue;
      }
      if (utf8.pending()) return ambiguous(kBadUtf8);
      if (kind == PathByte::refuse) {
        return ambiguous(c == ';' ? "a \";\" in a path segment (path parameters such as \"..;/\" or \";jsessionid=\")"
                                  : "a raw \"\\\" in the path");
      }
      if (kind == PathByte::escape) {
        append_escape(out, c);
      } else {
        out += static_cast<char>(c);
      }
    }
    if (utf8.pending()) return ambiguous(kBadUtf8);

    const bool last = j >= in.size();
    const std::string_view seg = std::string_view(out).substr(seg_start + 1);
    const bool dot = seg == ".";
    const bool dotdot = seg == "..";
    if (!rewrite && (dot || dotdot)) return ambiguous("a dot segment (\".\", \"..\", \"%2e\") in the path");
    if (!rewrite && seg.empty() && !last) return ambiguous("an empty path segment (\"//\")");
    if (dot || dotdot) {
      out.resize(seg_start);
      if (dotdot) {
        if (out.empty()) return ambiguous("the path climbs above \"/\"");
        out.resize(out.rfind('/'));
      }
      if (last) out += '/';  // "/a/.." is "/", "/a/." is "/a/"
    }
    if (last) break;
    i = j + 1;
  }
  // Merge "//" (only reachable under rewrite).
  size_t w = 0;
  for (size_t r = 0; r < out.size(); ++r) {
    if (out[r] == '/' && w > 0 && out[w - 1] == '/') continue;
    out[w++] = out[r];
  }
  out.resize(w);
  return {};
}

// The query is forwarded as received; it must still mean one thing.
Refusal check_query(std::string_view q) {
  for (size_t i = q.find('%'); i != std::string_view::npos; i = q.find('%', i + 1)) {
    const int hi = i + 2 < q.size() ? hex_value(q[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(q[i + 2]) : -1;
    if (lo < 0) return ambiguous("a malformed %-escape in the query");
    if (is_control(static_cast<unsigned char>(hi * 16 + lo))) return ambiguous("an encoded control byte in the query");
  }
  return {};
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (detail::ascii_lower(static_cast<unsigned char>(a[i])) != static_cast<unsigned char>(b[i])) return false;
  }
  return true;
}

// RFC 3986 §3.2 authority of an absolute-form target, strictly: a host name
// of unreserved characters or an IP literal, an optional port; no userinfo.
// Sets *host_port to it with the host lower-cased.
Refusal parse_authority(std::string_view a, std::string* host_port) {
  if (a.empty()) return malformed("an absolute-form target without an authority");
  if (a.find('@') != std::string_view::npos) return malformed("userinfo in the authority of an absolute-form target");
  size_t host_end = 0;
  if (a[0] == '[') {
    host_end = a.find(']');
    if (host_end == std::string_view::npos || host_end == 1) return malformed("a malformed IP literal in the authority");
    for (const char c : a.substr(1, host_end - 1)) {
      if (hex_value(c) < 0 && c != ':' && c != '.') return malformed("a malformed IP literal in the authority");
    }
    ++host_end;
  } else {
    while (host_end < a.size() && a[host_end] != ':') {
      if (!is_unreserved(static_cast<unsigned char>(a[host_end]))) {
        return malformed("a host name with characters other than letters, digits, \"-\", \".\", \"_\", \"~\"");
      }
      ++host_end;
    }
    if (host_end == 0) return malformed("an absolute-form target without a host");
  }
  if (host_end < a.size()) {
    uint16_t port = 0;
    if (a[host_end] != ':' || !detail::parse_port(a.substr(host_end + 1), &port)) {
      return malformed("a malformed port in the authority");
    }
  }
  host_port->assign(a);
  for (size_t k = 0; k < host_end; ++k) {
    (*host_port)[k] = static_cast<char>(detail::ascii_lower(static_cast<unsigned char>(a[k])));
  }
  return {};
}

}  // namespace

TargetResult canonicalize_target(std::string_view raw, std::string_view method, PathPolicy policy) {
  if (raw.empty()) return refused(malformed("an empty request-target"));
  if (Refusal r = screen_raw_bytes(raw)) return refused(r);

  TargetResult result;
  CanonicalTarget& t = result.target;
  if (raw == "*") {
    if (method != "OPTIONS") return refused(malformed("the asterisk-form \"*\" is only for OPTIONS"));
    t.text = "*";
    t.path_len = 1;
    return result;
  }

  // origin-form, or absolute-form "http(s)://authority[path][?query]".
  std::string_view rest = raw;
  if (raw[0] != '/') {
    const size_t colon = raw.find(':');
    const std::string_view scheme = raw.substr(0, colon);
    if (colon == std::string_view::npos || raw.substr(colon, 3) != "://" ||
        !(iequals_ascii(scheme, "http") || iequals_ascii(scheme, "https"))) {
      return refused(malformed("not an origin-form or http(s) absolute-form target "
                               "(authority-form, a relative reference or another scheme)"));
    }
    rest = raw.substr(colon + 3);
    const size_t end = rest.find_first_of("/?");
    if (Refusal r = parse_authority(rest.substr(0, end), &t.authority)) return refused(r);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }

  const size_t qmark = rest.find('?');
  std::string_view path = rest.substr(0, qmark);
  const bool has_query = qmark != std::string_view::npos;
  const std::string_view query = has_query ? rest.substr(qmark + 1) : std::string_view();
  if (Refusal r = check_query(query)) return refused(r);

  if (path.empty()) {
    path = "/";  // absolute-form without a path (RFC 9112 §3.2.2)
  }
  const bool plain = is_plain_canonical(path);
  if (plain && path.data() == raw.data()) {
    t.text.assign(raw);  // the common case: one copy
  } else {
    t.text.reserve(rest.size() + 1);
    if (plain) {
      t.text.assign(path);
    } else if (Refusal r = canonicalize_path(path, policy, t.text)) {
      return refused(r);
    }
    if (has_query) {
      t.text += '?';
      t.text.append(query);
    }
  }
  t.path_len = has_query ? t.text.size() - query.size() - 1 : t.text.size();
  t.has_query = has_query;
  return result;
}

}  // namespace fedproxy::config
