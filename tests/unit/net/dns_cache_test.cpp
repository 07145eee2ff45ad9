// DnsCache: the resolver's cache without I/O — TTL expiry on an injected
// clock, negative caching, coalescing of concurrent lookups, invalidation.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/net/dns_cache.hpp"

using fedproxy::net::DnsCache;
using Status = DnsCache::Status;
using Addrs = std::vector<std::string>;

namespace {
DnsCache make(uint64_t ttl, uint64_t negative) {
  DnsCache::Options o;
  o.ttl_ms = ttl;
  o.negative_ttl_ms = negative;
  return DnsCache(o);
}
}  // namespace

TEST_CASE("dns cache: the first asker starts the lookup; the answer is cached for the TTL") {
  DnsCache c = make(30000, 5000);
  auto a = c.ask("peer.example", 1, 1000);
  CHECK(a.status == Status::pending);
  CHECK(a.start_lookup);
  CHECK(c.in_flight("peer.example"));
  CHECK(c.fresh("peer.example", 1000) == nullptr);

  auto waiters = c.complete("peer.example", true, {"192.0.2.7", "2001:db8::7"}, "", 1200);
  CHECK(waiters == std::vector<uint64_t>{1});
  CHECK_FALSE(c.in_flight("peer.example"));
  CHECK(c.result("peer.example").addresses == Addrs{"192.0.2.7", "2001:db8::7"});

  // Fresh until 1200 + 30000 (exclusive).
  auto hit = c.ask("peer.example", 2, 31199);
  CHECK(hit.status == Status::fresh);
  CHECK_FALSE(hit.start_lookup);
  CHECK(hit.addresses == Addrs{"192.0.2.7", "2001:db8::7"});
  REQUIRE(c.fresh("peer.example", 31199) != nullptr);
  CHECK(c.waiters("peer.example") == 0);  // a hit registers nobody

  // Expired: the next asker starts a new lookup.
  CHECK(c.fresh("peer.example", 31200) == nullptr);
  auto again = c.ask("peer.example", 3, 31200);
  CHECK(again.status == Status::pending);
  CHECK(again.start_lookup);
}

TEST_CASE("dns cache: concurrent askers of one name share one lookup") {
  DnsCache c = make(30000, 5000);
  CHECK(c.ask("a.example", 1, 0).start_lookup);
  auto second = c.ask("a.example", 2, 10);
  auto third = c.ask("a.example", 3, 20);
  CHECK(second.status == Status::pending);
  CHECK_FALSE(second.start_lookup);
  CHECK_FALSE(third.start_lookup);
  CHECK(c.waiters("a.example") == 3);
  // Another name is independent.
  CHECK(c.ask("b.example", 4, 20).start_lookup);
  c.cancel("a.example", 2);
  auto waiters = c.complete("a.example", true, {"198.51.100.1"}, "", 50);
  CHECK(waiters == std::vector<uint64_t>{1, 3});  // in order, without the cancelled one
  CHECK(c.waiters("b.example") == 1);
}

TEST_CASE("dns cache: a failure is cached for the negative TTL, then looked up again") {
  DnsCache c = make(30000, 5000);
  c.ask("gone.invalid", 1, 0);
  auto waiters = c.complete("gone.invalid", false, {}, "cannot resolve gone.invalid: unknown node or service", 100);
  CHECK(waiters.size() == 1);
  CHECK(c.result("gone.invalid").status == Status::negative);
  auto neg = c.ask("gone.invalid", 2, 5099);
  CHECK(neg.status == Status::negative);
  CHECK(neg.error == "cannot resolve gone.invalid: unknown node or service");
  CHECK_FALSE(neg.start_lookup);
  CHECK(c.fresh("gone.invalid", 200) == nullptr);  // fresh() is positive answers only
  auto retry = c.ask("gone.invalid", 3, 5100);
  CHECK(retry.status == Status::pending);
  CHECK(retry.start_lookup);
  // A success with no address is a failure.
  c.complete("gone.invalid", true, {}, "", 5200);
  CHECK(c.result("gone.invalid").status == Status::negative);
}

TEST_CASE("dns cache: invalidate forgets the answer (a connect to it failed)") {
  DnsCache c = make(30000, 5000);
  c.ask("moved.example", 1, 0);
  c.complete("moved.example", true, {"192.0.2.1"}, "", 0);
  REQUIRE(c.fresh("moved.example", 10) != nullptr);
  c.invalidate("moved.example");
  CHECK(c.fresh("moved.example", 10) == nullptr);
  auto a = c.ask("moved.example", 2, 10);
  CHECK(a.status == Status::pending);
  CHECK(a.start_lookup);
  // Invalidating while a lookup is in flight keeps it (and its waiters).
  c.invalidate("moved.example");
  CHECK(c.in_flight("moved.example"));
  CHECK(c.waiters("moved.example") == 1);
  auto waiters = c.complete("moved.example", true, {"192.0.2.2"}, "", 20);
  CHECK(waiters == std::vector<uint64_t>{2});
  REQUIRE(c.fresh("moved.example", 30) != nullptr);
  CHECK(c.fresh("moved.example", 30)->front() == "192.0.2.2");
  c.invalidate("never.asked");  // harmless
}

TEST_CASE("dns cache: TTL 0 caches nothing, yet concurrent askers still coalesce") {
  DnsCache c = make(0, 0);
  CHECK(c.ask("n.example", 1, 0).start_lookup);
  CHECK_FALSE(c.ask("n.example", 2, 0).start_lookup);
  CHECK(c.complete("n.example", true, {"192.0.2.9"}, "", 5).size() == 2);
  CHECK(c.fresh("n.example", 5) == nullptr);
  CHECK(c.ask("n.example", 3, 5).start_lookup);
}

TEST_CASE("dns cache: a lookup dropped without a result") {
  DnsCache c = make(30000, 5000);
  c.ask("x.example", 1, 0);
  c.cancel("x.example", 1);
  CHECK_FALSE(c.abort_lookup("x.example"));  // nobody waits: forgotten
  CHECK_FALSE(c.in_flight("x.example"));
  CHECK(c.size() == 0);
  // Someone asked after the cancel: the caller must start a new lookup.
  c.ask("y.example", 2, 0);
  c.cancel("y.example", 2);
  c.ask("y.example", 3, 1);  // coalesced into the cancelled one
  CHECK(c.abort_lookup("y.example"));
  CHECK(c.in_flight("y.example"));
  CHECK(c.complete("y.example", true, {"192.0.2.3"}, "", 2) == std::vector<uint64_t>{3});
}

TEST_CASE("dns cache: expired entries are pruned beyond max_entries; live ones stay") {
  DnsCache::Options o;
  o.ttl_ms = 10;
  o.negative_ttl_ms = 10;
  o.max_entries = 4;
  DnsCache c(o);
  for (int i = 0; i < 4; ++i) {
    std::string n = "h" + std::to_string(i);
    c.ask(n, static_cast<uint64_t>(i + 1), 0);
    c.complete(n, true, {"192.0.2.1"}, "", 0);
  }
  c.ask("pending", 100, 50);  // in flight: never pruned
  c.ask("late", 101, 50);
  c.complete("late", true, {"192.0.2.2"}, "", 50);  // size 6 > 4: the expired h0..h3 go
  CHECK(c.size() == 2);
  CHECK(c.in_flight("pending"));
  CHECK(c.fresh("late", 55) != nullptr);
  CHECK(c.drop_waiters() == 1);
}

TEST_CASE("dns cache: prefer moves the address that connected to the front") {
  DnsCache c = make(30000, 5000);
  c.ask("multi.example", 1, 0);
  c.complete("multi.example", true, {"192.0.2.1", "192.0.2.2", "192.0.2.3"}, "", 0);
  c.prefer("multi.example", "192.0.2.3");
  CHECK(*c.fresh("multi.example", 1) == Addrs{"192.0.2.3", "192.0.2.1", "192.0.2.2"});
  c.prefer("multi.example", "198.51.100.9");  // not an address of the name: ignored
  c.prefer("other.example", "192.0.2.1");
  CHECK(*c.fresh("multi.example", 1) == Addrs{"192.0.2.3", "192.0.2.1", "192.0.2.2"});
}
