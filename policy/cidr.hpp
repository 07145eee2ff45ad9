// Internal: IP addresses and source CIDR sets for grants (SPEC §4
// `source_cidrs`). IPv4 sets are CRoaring bitmaps over the 32-bit address
// space (a CIDR is one range, kept as a run container); IPv6 prefixes are a
// short vector. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is treated as the
// IPv4 address a.b.c.d everywhere, in sets and in lookups, so a dual-stack
// listener and an IPv4 listener decide alike.
#pragma once

#include <roaring/roaring.hh>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::policy::detail {

struct IpAddr {
  bool v4 = true;
  uint32_t a4 = 0;          // host order, when v4
  uint64_t hi = 0, lo = 0;  // host order, when !v4
};

// Textual IPv4 or IPv6 ("[v6]" and a "%zone" suffix accepted). Allocates
// nothing. False when it is not an address.
bool parse_ip(std::string_view text, IpAddr* out) noexcept;

class CidrSet {
 public:
  // Adds "a.b.c.d/n", "v6/n" or a bare address (a single host). Host bits
  // set below the prefix are an error (a typo must not widen or move the
  // range silently). Returns the reason when the text is not valid.
  std::optional<std::string> add(std::string_view cidr);
  void finish();  // after the last add: compress the bitmap

  bool contains(const IpAddr& ip) const noexcept;
  bool contains(std::string_view ip_text) const noexcept;  // unparseable → false

  size_t v4_address_count() const { return static_cast<size_t>(v4_.cardinality()); }
  size_t v6_prefix_count() const { return v6_.size(); }

 private:
  struct V6 {
    uint64_t hi, lo;  // masked prefix
    uint8_t len;      // 0..128
  };
  Roaring v4_;
  std::vector<V6> v6_;
};

}  // namespace fedproxy::policy::detail
