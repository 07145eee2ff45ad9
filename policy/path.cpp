// Request path normalisation for route matching (SPEC §4), RFC 3986 §6.2.2
// style: percent-decode unreserved characters (ALPHA DIGIT - . _ ~), write
// every other escape with uppercase hex, resolve "." and ".." segments
// (after decoding, so "%2e%2e" is ".."), collapse empty segments ("//").
// "%2F" stays encoded: it is data inside a segment, not a separator; so does
// a backslash. A malformed escape ("%zz", a lone "%") and a ".." above "/"
// make the path invalid (400): what the app would make of them is unknown,
// and a policy decision must not rest on a guess.

#include <cstring>

#include "policy/policy_internal.hpp"

namespace fedproxy::policy {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

}  // namespace

PathStatus normalize_into(std::string_view in, char* out, size_t cap, size_t* out_len) noexcept {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (in.empty() || in[0] != '/') return PathStatus::not_absolute;
  size_t n = 0;       // bytes written to out
  size_t i = 1;       // read position (after the leading '/')
  bool trailing = false;
  for (;;) {
    // One segment: in[i .. next '/'), written to out as "/" + decoded bytes.
    const size_t seg_out = n;
    if (n >= cap) return PathStatus::too_long;
    out[n++] = '/';
    size_t j = i;
    while (j < in.size() && in[j] != '/') {
      char c = in[j];
      if (c == '%') {
        if (j + 2 >= in.size()) return PathStatus::bad_escape;
        int h = hex_value(in[j + 1]), l = hex_value(in[j + 2]);
        if (h < 0 || l < 0) return PathStatus::bad_escape;
        unsigned char b = static_cast<unsigned char>(h * 16 + l);
        if (is_unreserved(b)) {
          if (n >= cap) return PathStatus::too_long;
          out[n++] = static_cast<char>(b);
        } else {
          if (n + 3 > cap) return PathStatus::too_long;
          out[n++] = '%';
          out[n++] = kHex[b >> 4];
          out[n++] = kHex[b & 15];
        }
        j += 3;
      } else {
        if (n >= cap) return PathStatus::too_long;
        out[n++] = c;
        ++j;
      }
    }
    const bool last = j >= in.size();
    const size_t seg_len = n - seg_out - 1;
    const char* seg = out + seg_out + 1;
    if (seg_len == 0 || (seg_len == 1 && seg[0] == '.')) {
      n = seg_out;  // "" and "." name the current directory
      trailing = last;
    } else if (seg_len == 2 && seg[0] == '.' && seg[1] == '.') {
      n = seg_out;
      if (n == 0) return PathStatus::above_root;
      while (out[n - 1] != '/') --n;  // drop the previous segment
      --n;
      trailing = last;
    } else {
      trailing = false;
    }
    if (last) break;
    i = j + 1;
  }
  if (n == 0 || trailing) {
    if (n >= cap) return PathStatus::too_long;
    out[n++] = '/';
  }
  *out_len = n;
  return PathStatus::ok;
}

const Route* find_route(const Snapshot::Impl& s, std::string_view path) noexcept {
  // A prefix P matches path X when P == X, or X = P + "/..." (P without a
  // trailing '/'), or P ends in '/' and X starts with P. So the candidates
  // are X itself and, for every '/' at k, X[0, k] and X[0, k). Longest first.
  auto probe = [&](size_t len) -> const Route* {
    if (len >= s.route_len.size() || !s.route_len[len]) return nullptr;
    auto it = s.route_by_prefix.find(path.substr(0, len));
    return it == s.route_by_prefix.end() ? nullptr : &s.routes[it->second];
  };
  if (const Route* r = probe(path.size())) return r;
  for (size_t k = path.size(); k-- > 0;) {
    if (path[k] != '/') continue;
    if (k + 1 < path.size()) {
      if (const Route* r = probe(k + 1)) return r;
    }
    if (k > 0) {
      if (const Route* r = probe(k)) return r;
    }
  }
  return nullptr;
}

std::optional<std::string> normalize_path(std::string_view path) {
  std::string out(path.size() + 1, '\0');
  size_t len = 0;
  if (normalize_into(path, out.data(), out.size(), &len) != PathStatus::ok) return std::nullopt;
  out.resize(len);
  return out;
}

}  // namespace fedproxy::policy
