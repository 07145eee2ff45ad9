// Route lookup (SPEC §4): the longest route prefix that matches the
// canonical path on whole segments, compared ASCII case-insensitively (an
// app that routes case-insensitively must not reach a denied resource
// through "/API/v1/Credentials").

#include "policy/policy_internal.hpp"
#include "policy/uri_chars.hpp"

namespace fedproxy::policy {

size_t AsciiCaseHash::operator()(std::string_view s) const noexcept {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const char c : s) {
    h ^= detail::ascii_lower(static_cast<unsigned char>(c));
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

bool AsciiCaseEqual::operator()(std::string_view a, std::string_view b) const noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (detail::ascii_lower(static_cast<unsigned char>(a[i])) != detail::ascii_lower(static_cast<unsigned char>(b[i]))) {
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
