// Internal helpers shared by the request and response parsers. Not API.
#pragma once

#include <string_view>

#include "proxy/http1/message.hpp"

namespace fedproxy::http1::detail {

inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim_ows(std::string_view v) {
  size_t b = 0, e = v.size();
  while (b < e && is_ows(v[b])) ++b;
  while (e > b && is_ows(v[e - 1])) --e;
  return v.substr(b, e - b);
}

// Which framing-relevant header a name is (the parsers look at few names, so
// dispatch on length first to keep the common case cheap).
enum class Special { other, content_length, transfer_encoding, host, expect };

inline Special classify(std::string_view name) {
  switch (name.size()) {
    case 4:
      return iequals(name, "host") ? Special::host : Special::other;
    case 6:
      return iequals(name, "expect") ? Special::expect : Special::other;
    case 14:
      return iequals(name, "content-length") ? Special::content_length : Special::other;
    case 17:
      return iequals(name, "transfer-encoding") ? Special::transfer_encoding : Special::other;
    default:
      return Special::other;
  }
}

}  // namespace fedproxy::http1::detail
