// Source CIDR sets (SPEC §4 source_cidrs): IPv4 and IPv6 prefixes, /0, /32,
// /128, IPv4-mapped IPv6 on both sides, broadcast, invalid spellings.

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "policy/cidr.hpp"

using fedproxy::policy::detail::CidrSet;
using fedproxy::policy::detail::IpAddr;
using fedproxy::policy::detail::parse_ip;

namespace {

CidrSet set_of(std::initializer_list<const char*> cidrs) {
  CidrSet s;
  for (const char* c : cidrs) {
    auto err = s.add(c);
    INFO(c << ": " << err.value_or(""));
    REQUIRE_FALSE(err.has_value());
  }
  s.finish();
  return s;
}

}  // namespace

TEST_CASE("parse_ip") {
  IpAddr ip;
  REQUIRE(parse_ip("10.1.2.3", &ip));
  CHECK(ip.v4);
  CHECK(ip.a4 == 0x0a010203u);
  REQUIRE(parse_ip("::ffff:10.1.2.3", &ip));
  CHECK(ip.v4);
  CHECK(ip.a4 == 0x0a010203u);
  REQUIRE(parse_ip("::FFFF:0a01:0203", &ip));
  CHECK(ip.v4);
  CHECK(ip.a4 == 0x0a010203u);
  REQUIRE(parse_ip("[2001:db8::1]", &ip));
  CHECK_FALSE(ip.v4);
  CHECK(ip.hi == 0x20010db800000000ull);
  CHECK(ip.lo == 1);
  REQUIRE(parse_ip("fe80::1%eth0", &ip));
  CHECK_FALSE(ip.v4);
  for (const char* bad : {"", "10.1.2", "10.1.2.256", "010.1.2.3", "1.2.3.4 ", "::g", "abc",
                          "10.1.2.3/8", "::ffff:1.2.3.4.5",
                          "1111:2222:3333:4444:5555:6666:7777:8888:9999"}) {
    INFO(std::string(bad));
    CHECK_FALSE(parse_ip(bad, &ip));
  }
}

TEST_CASE("IPv4 prefixes: /8, /32, /0, broadcast") {
  CidrSet s = set_of({"10.0.0.0/8", "192.168.1.7/32", "172.16.0.0/12"});
  CHECK(s.contains("10.0.0.0"));
  CHECK(s.contains("10.255.255.255"));
  CHECK_FALSE(s.contains("11.0.0.0"));
  CHECK_FALSE(s.contains("9.255.255.255"));
  CHECK(s.contains("192.168.1.7"));
  CHECK_FALSE(s.contains("192.168.1.8"));
  CHECK(s.contains("172.31.255.255"));
  CHECK_FALSE(s.contains("172.32.0.0"));
  CHECK_FALSE(s.contains("2001:db8::1"));
  CHECK_FALSE(s.contains("not-an-ip"));
  CHECK_FALSE(s.contains(""));

  CidrSet all = set_of({"0.0.0.0/0"});
  CHECK(all.contains("0.0.0.0"));
  CHECK(all.contains("255.255.255.255"));
  CHECK(all.contains("::ffff:8.8.8.8"));
  CHECK_FALSE(all.contains("2001:db8::1"));  // IPv4 /0 is not all of IPv6
  CHECK(all.v4_address_count() == (size_t{1} << 32));

  CidrSet bcast = set_of({"255.255.255.255/32"});
  CHECK(bcast.contains("255.255.255.255"));
  CHECK_FALSE(bcast.contains("255.255.255.254"));
  CidrSet top = set_of({"255.255.255.0/24"});
  CHECK(top.contains("255.255.255.255"));

  CidrSet bare = set_of({"203.0.113.9"});  // a bare address is one host
  CHECK(bare.contains("203.0.113.9"));
  CHECK_FALSE(bare.contains("203.0.113.10"));
}

TEST_CASE("IPv6 prefixes: /128, /64, /0") {
  CidrSet s = set_of({"2001:db8::/32", "fd00::1/128"});
  CHECK(s.contains("2001:db8::1"));
  CHECK(s.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(s.contains("2001:db9::"));
  CHECK(s.contains("fd00::1"));
  CHECK_FALSE(s.contains("fd00::2"));
  CHECK_FALSE(s.contains("10.0.0.1"));

  CidrSet s64 = set_of({"2001:db8:1:2::/64"});
  CHECK(s64.contains("2001:db8:1:2:ffff::1"));
  CHECK_FALSE(s64.contains("2001:db8:1:3::"));

  CidrSet s65 = set_of({"2001:db8:1:2:8000::/65"});
  CHECK(s65.contains("2001:db8:1:2:8000::1"));
  CHECK_FALSE(s65.contains("2001:db8:1:2:7fff::1"));

  CidrSet all6 = set_of({"::/0"});
  CHECK(all6.contains("::"));
  CHECK(all6.contains("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  // ::/0 contains ::ffff:0:0/96, i.e. every IPv4 client (mapped or not).
  CHECK(all6.contains("192.0.2.1"));
  CHECK(all6.contains("::ffff:192.0.2.1"));
}

TEST_CASE("IPv4-mapped IPv6 is IPv4, in sets and in addresses") {
  CidrSet v4 = set_of({"10.0.0.0/8"});
  CHECK(v4.contains("::ffff:10.9.8.7"));
  CHECK(v4.contains("[::ffff:10.9.8.7]"));
  CHECK_FALSE(v4.contains("::ffff:11.9.8.7"));
  CHECK_FALSE(v4.contains("::10.9.8.7"));  // IPv4-compatible (deprecated) is not mapped

  CidrSet mapped = set_of({"::ffff:10.0.0.0/104"});  // = 10.0.0.0/8
  CHECK(mapped.contains("10.1.1.1"));
  CHECK(mapped.contains("::ffff:10.1.1.1"));
  CHECK_FALSE(mapped.contains("11.1.1.1"));
  CHECK(mapped.v6_prefix_count() == 0);

  CidrSet host = set_of({"::ffff:192.0.2.1/128"});
  CHECK(host.contains("192.0.2.1"));
  CHECK_FALSE(host.contains("192.0.2.2"));

  CidrSet whole = set_of({"::ffff:0:0/96"});
  CHECK(whole.contains("1.2.3.4"));
  CHECK_FALSE(whole.contains("2001:db8::1"));
}

TEST_CASE("invalid CIDRs are refused with a reason") {
  struct Bad {
    const char* cidr;
    const char* fragment;
  };
  const Bad cases[] = {
      {"10.0.0.0/33", "prefix length"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/08", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0.0/x", "prefix length"},
      {"2001:db8::/129", "prefix length"},
      {"10.0.0.1/8", "did you mean \"10.0.0.0/8\"?"},
      {"192.168.1.1/24", "did you mean \"192.168.1.0/24\"?"},
      {"2001:db8::1/32", "did you mean \"2001:db8::/32\"?"},
      {"10.0.0/8", "not an IPv4 or IPv6 address"},
      {"10.0.0.256/32", "not an IPv4 or IPv6 address"},
      {"", "not an IPv4 or IPv6 address"},
      {"/8", "not an IPv4 or IPv6 address"},
      {"example.com/8", "not an IPv4 or IPv6 address"},
      {" 10.0.0.0/8", "not an IPv4 or IPv6 address"},
      {"[::1]/128", "without brackets"},
      {"fe80::%eth0/64", "without brackets or zone"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.cidr));
    CidrSet s;
    auto err = s.add(c.cidr);
    REQUIRE(err.has_value());
    CHECK(err->find(c.fragment) != std::string::npos);
  }
}
