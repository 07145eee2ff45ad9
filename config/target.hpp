// The canonical request target (SPEC §4): the request-target parsed once,
// canonicalized per RFC 3986, or refused when common parsers (RFC 3986,
// WHATWG URL, servlet containers, WSGI/CGI) could read it differently.
// Policy decides on this value, the audit records it and the forwarder sends
// it byte for byte: one value, so what was authorized and what the app
// receives can never drift apart.
//
// Pure: no I/O, no clock. Allocates the result string only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fedproxy::config {

// http.path_policy: what to do with "//" and dot segments in a path.
enum class PathPolicy : uint8_t {
  reject,   // 400 ambiguous_path (default)
  rewrite,  // forward the canonical form (RFC 3986 §5.2.4, then "//" merged)
};

enum class TargetStatus : uint8_t {
  ok,
  bad_request,     // not a request-target at all: authority-form, "*" for a
                   // method other than OPTIONS, an absolute-form with another
                   // scheme, no or a bad authority, userinfo, a malformed
                   // %-escape in the path
  ambiguous_path,  // parsers could disagree (SPEC §4's list) → 400 ambiguous_path
};

struct CanonicalTarget {
  // The origin-form to forward: canonical path, then "?" + query when the
  // request had a "?" (the query is kept as received; only the limit
  // rewrite of policy may change it). "*" for an asterisk-form OPTIONS.
  std::string text;
  size_t path_len = 0;     // text[0, path_len) is the path
  bool has_query = false;  // text[path_len] == '?'
  // Absolute-form only: the authority ("host[:port]", lower-cased host) that
  // replaces the Host header (RFC 9112 §3.2.2). Empty for origin-form.
  std::string authority;

  std::string_view path() const { return std::string_view(text).substr(0, path_len); }
  std::string_view query() const {
    return has_query ? std::string_view(text).substr(path_len + 1) : std::string_view();
  }
  bool asterisk() const { return text == "*"; }
};

struct TargetResult {
  TargetStatus status = TargetStatus::ok;
  const char* detail = "";  // why it was refused, for logs ("encoded '/' in the path")
  CanonicalTarget target;   // valid only when status == ok
};

// Parses and canonicalizes a request-target (RFC 9112 §3.2):
// - origin-form "/p?q"; absolute-form "http(s)://authority/p?q" becomes
//   origin-form ("" path → "/") with `authority` set; "*" only for OPTIONS;
//   anything else (authority-form, relative) → bad_request.
// - path: %-escapes of unreserved characters decoded, other escapes
//   upper-cased, the bytes RFC 3986 does not allow raw in a path but every
//   parser reads alike (" < > [ ] ^ ` { | }) written as escapes. Refused as
//   ambiguous_path: "%2f", "%5c", a raw "\", a raw or encoded control byte
//   (00-1F, 7F) or space, ";" raw or encoded, a raw "#" or raw byte >= 0x80
//   anywhere in the target, encoded bytes >= 0x80 that are not UTF-8
//   (overlong "%c0%ae"), and, under PathPolicy::reject, an empty segment or
//   a dot segment ("." ".." "%2e" ...); under PathPolicy::rewrite those are
//   resolved (RFC 3986 §5.2.4, an empty segment is a segment) and then "//"
//   merged. A path that climbs above "/" is refused under both. A malformed
//   %-escape in the path → bad_request.
// - query: kept as received; a malformed %-escape or an encoded control
//   byte in it → ambiguous_path.
// - the result is a fixed point: canonicalizing `target.text` again returns
//   it unchanged. An already-canonical origin-form costs one copy.
TargetResult canonicalize_target(std::string_view raw, std::string_view method, PathPolicy policy);

}  // namespace fedproxy::config
