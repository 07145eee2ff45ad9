#include "policy/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "config/validate.hpp"

namespace fedproxy::policy::detail {

namespace {

constexpr uint64_t kMappedHi = 0;
constexpr uint64_t kMappedLoPrefix = 0x0000ffff00000000ull;  // ::ffff:0:0/96

uint64_t load_be64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// Mask of the top `bits` bits of a 64-bit word (bits in 0..64).
uint64_t top_mask(int bits) {
  if (bits <= 0) return 0;
  if (bits >= 64) return ~0ull;
  return ~0ull << (64 - bits);
}

void mask_v6(uint64_t* hi, uint64_t* lo, int len) {
  *hi &= top_mask(len);
  *lo &= top_mask(len - 64);
}

bool is_mapped(uint64_t hi, uint64_t lo) {
  return hi == kMappedHi && (lo & 0xffffffff00000000ull) == kMappedLoPrefix;
}

// Prefix length: decimal, no sign, no leading zeros, ≤ max.
bool parse_len(std::string_view s, int max, int* out) {
  if (s.empty() || s.size() > 3) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

}  // namespace

bool parse_ip(std::string_view text, IpAddr* out) noexcept {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (auto pct = text.find('%'); pct != std::string_view::npos) text = text.substr(0, pct);
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    in_addr a{};
    if (inet_pton(AF_INET, buf, &a) != 1) return false;
    out->v4 = true;
    out->a4 = ntohl(a.s_addr);
    return true;
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, buf, &a) != 1) return false;
  uint64_t hi = load_be64(a.s6_addr), lo = load_be64(a.s6_addr + 8);
  if (is_mapped(hi, lo)) {
    out->v4 = true;
    out->a4 = static_cast<uint32_t>(lo);
    return true;
  }
  out->v4 = false;
  out->hi = hi;
  out->lo = lo;
  return true;
}

std::optional<std::string> CidrSet::add(std::string_view cidr) {
  std::string_view addr = cidr;
  std::optional<std::string_view> len_text;
  if (auto slash = cidr.find('/'); slash != std::string_view::npos) {
    addr = cidr.substr(0, slash);
    len_text = cidr.substr(slash + 1);
  }
  if (addr.find('%') != std::string_view::npos || addr.find('[') != std::string_view::npos) {
    return "invalid CIDR " + config::detail::quote(cidr) + ": write the bare address without brackets or zone";
  }
  IpAddr ip;
  if (!parse_ip(addr, &ip)) {
    return "invalid CIDR " + config::detail::quote(cidr) + ": " + config::detail::quote(addr) + " is not an IPv4 or IPv6 address";
  }
  bool written_v6 = addr.find(':') != std::string_view::npos;
  int max = written_v6 ? 128 : 32;
  int len = max;
  if (len_text && !parse_len(*len_text, max, &len)) {
    return "invalid CIDR " + config::detail::quote(cidr) + ": prefix length must be a number from 0 to " +
           std::to_string(max);
  }
  if (!written_v6) {
    uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
    if ((ip.a4 & ~mask) != 0) {
      in_addr a{};
      a.s_addr = htonl(ip.a4 & mask);
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &a, buf, sizeof buf);
      return "invalid CIDR " + config::detail::quote(cidr) + ": bits are set after the prefix; did you mean \"" +
             buf + "/" + std::to_string(len) + "\"?";
    }
    uint64_t first = ip.a4;
    v4_.addRange(first, first + (uint64_t{1} << (32 - len)));
    return std::nullopt;
  }
  // Written as IPv6. parse_ip folded a mapped address to v4; unfold it.
  uint64_t hi = ip.hi, lo = ip.lo;
  if (ip.v4) {
    hi = kMappedHi;
    lo = kMappedLoPrefix | ip.a4;
  }
  uint64_t mhi = hi, mlo = lo;
  mask_v6(&mhi, &mlo, len);
  if (mhi != hi || mlo != lo) {
    in6_addr a{};
    for (int i = 0; i < 8; ++i) {
      a.s6_addr[i] = static_cast<unsigned char>(mhi >> (56 - 8 * i));
      a.s6_addr[8 + i] = static_cast<unsigned char>(mlo >> (56 - 8 * i));
    }
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
    return "invalid CIDR " + config::detail::quote(cidr) + ": bits are set after the prefix; did you mean \"" +
           buf + "/" + std::to_string(len) + "\"?";
  }
  if (len >= 96 && is_mapped(hi, lo)) {
    // Inside ::ffff:0:0/96: the IPv4 range it stands for.
    uint64_t first = static_cast<uint32_t>(lo);
    v4_.addRange(first, first + (uint64_t{1} << (128 - len)));
    return std::nullopt;
  }
  if (len < 96) {
    // Covers all of ::ffff:0:0/96 when the mapped prefix lies inside it.
    uint64_t phi = kMappedHi, plo = kMappedLoPrefix;
    mask_v6(&phi, &plo, len);
    if (phi == hi && plo == lo) v4_.addRange(0, uint64_t{1} << 32);
  }
  v6_.push_back({hi, lo, static_cast<uint8_t>(len)});
  return std::nullopt;
}

void CidrSet::finish() {
  v4_.runOptimize();
  v4_.shrinkToFit();
  // Widest prefixes first: a /0 answers at once.
  std::sort(v6_.begin(), v6_.end(), [](const V6& a, const V6& b) {
    if (a.len != b.len) return a.len < b.len;
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  });
  v6_.erase(std::unique(v6_.begin(), v6_.end(),
                        [](const V6& a, const V6& b) {
                          return a.len == b.len && a.hi == b.hi && a.lo == b.lo;
                        }),
            v6_.end());
}

bool CidrSet::contains(const IpAddr& ip) const noexcept {
  if (ip.v4) return v4_.contains(ip.a4);
  for (const V6& p : v6_) {
    uint64_t hi = ip.hi, lo = ip.lo;
    mask_v6(&hi, &lo, p.len);
    if (hi == p.hi && lo == p.lo) return true;
  }
  return false;
}

bool CidrSet::contains(std::string_view ip_text) const noexcept {
  IpAddr ip;
  return parse_ip(ip_text, &ip) && contains(ip);
}

}  // namespace fedproxy::policy::detail
