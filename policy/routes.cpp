// Route lookup (SPEC §4): the longest route prefix that matches the
// canonical path on whole segments, compared ASCII case-insensitively (an
// app that routes case-insensitively must not reach a denied resource
// through "/API/v1/Credentials").

#include <cstring>

#include "policy/policy_internal.hpp"
#include "config/uri_chars.hpp"

namespace fedproxy::policy {

namespace {

// Eight bytes at a time, ASCII letters lower-cased (SWAR: a byte gets 0x20
// when it is below 0x80, at least 'A' and at most 'Z'). Route lookups hash
// and compare every probed prefix of every request this way.
uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
uint64_t lower8(uint64_t x) {
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  const uint64_t seven = x & ~kHigh;
  const uint64_t ge_a = seven + 0x3f3f3f3f3f3f3f3full;  // high bit set: byte >= 'A'
  const uint64_t gt_z = seven + 0x2525252525252525ull;  // high bit set: byte > 'Z'
  const uint64_t upper = (ge_a ^ gt_z) & ~x & kHigh;
  return x | (upper >> 2);
}

}  // namespace

size_t AsciiCaseHash::operator()(std::string_view s) const noexcept {
  uint64_t h = 1469598103934665603ull ^ s.size();
  const char* p = s.data();
  const char* const end = p + s.size();
  for (; end - p >= 8; p += 8) h = (h ^ lower8(load8(p))) * 1099511628211ull;
  for (; p != end; ++p) h = (h ^ config::detail::ascii_lower(static_cast<unsigned char>(*p))) * 1099511628211ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

bool AsciiCaseEqual::operator()(std::string_view a, std::string_view b) const noexcept {
  if (a.size() != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  const char* const end = x + a.size();
  for (; end - x >= 8; x += 8, y += 8) {
    if (lower8(load8(x)) != lower8(load8(y))) return false;
  }
  for (; x != end; ++x, ++y) {
    if (config::detail::ascii_lower(static_cast<unsigned char>(*x)) != config::detail::ascii_lower(static_cast<unsigned char>(*y))) {
      return false;
    }
  }
  return true;
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

}  // namespace fedproxy::policy
