// HTTP/1.1 message heads as the codec hands them over. Plain data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::http1 {

struct Header {
  std::string name;   // as received (case kept)
  std::string value;  // leading/trailing OWS removed
};

using Headers = std::vector<Header>;

// ASCII case-insensitive equality (header names). Inline: it runs for every
// header against several names on every request.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    // Different bytes match only as the two cases of one letter.
    x |= 0x20;
    if (x != (y | 0x20) || x < 'a' || x > 'z') return false;
  }
  return true;
}
inline bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}
// Safe methods plus PUT and DELETE (RFC 9110 §9.2.2): sending one twice has
// the effect of sending it once, so only these may be retried.
inline bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}
// First header with this name (case-insensitive), or nullptr.
const Header* find_header(const Headers& headers, std::string_view name);

enum class BodyKind { none, content_length, chunked, until_close };

struct RequestHead {
  std::string method;
  std::string target;     // request-target exactly as received
  int version_minor = 1;  // HTTP/1.<minor>
  Headers headers;
  bool keep_alive = true;            // llhttp_should_keep_alive()
  BodyKind body = BodyKind::none;    // none, content_length or chunked
  uint64_t content_length = 0;       // when body == content_length
  bool expect_continue = false;      // "Expect: 100-continue"
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  Headers headers;
  bool keep_alive = true;
  BodyKind body = BodyKind::none;  // until_close when neither CL nor chunked
  uint64_t content_length = 0;
};

}  // namespace fedproxy::http1
