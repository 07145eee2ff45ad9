// Internal: byte classes of RFC 3986 and RFC 9110 and %-escape helpers,
// shared by the request-target canonicalizer (target.cpp) and the query
// parameter readers (query_params.cpp). Header-only: they run per byte.
#pragma once

#include <string>

namespace fedproxy::config::detail {

inline constexpr char kUpperHex[] = "0123456789ABCDEF";

// Value of one hex digit, -1 when `c` is none.
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool is_alpha(unsigned char c) noexcept { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
constexpr bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 3986 §2.3: ALPHA DIGIT - . _ ~ (an escape of one is the byte itself).
constexpr bool is_unreserved(unsigned char c) noexcept {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// C0 controls and DEL: never data anyone should have to interpret.
constexpr bool is_control(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }

// RFC 9110 §5.6.2 tchar: what a method name is made of.
constexpr bool is_tchar(unsigned char c) noexcept {
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return is_alpha(c) || is_digit(c);
  }
}

// Without a branch: it runs per byte of every route lookup.
constexpr unsigned char ascii_lower(unsigned char c) noexcept {
  return static_cast<unsigned char>(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
}
constexpr unsigned char ascii_upper(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') ? static_cast<unsigned char>(c - 32) : c;
}

// Appends "%XX" with upper-case hex.
inline void append_escape(std::string& out, unsigned char b) {
  const char esc[3] = {'%', kUpperHex[b >> 4], kUpperHex[b & 15]};
  out.append(esc, 3);
}

}  // namespace fedproxy::config::detail
