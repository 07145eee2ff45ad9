// net::Resolver on a real loop, through its test seams (a hosts file and an
// artificial delay; the system resolver is never asked): answers arrive on
// the loop, concurrent askers share one lookup, a cancelled slow lookup does
// not hold the loop, and a name that moves is seen after invalidation.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "proxy/net/loop.hpp"
#include "proxy/net/resolver.hpp"

using fedproxy::net::Loop;
using fedproxy::net::Resolution;

namespace {
struct Seams {
  std::string hosts = "/tmp/fedproxy-resolver-test-" + std::to_string(::getpid()) + ".hosts";
  explicit Seams(const std::string& content, int delay_ms = 0) {
    write(content);
    ::setenv("FEDPROXY_TEST_HOSTS_FILE", hosts.c_str(), 1);
    ::setenv("FEDPROXY_TEST_RESOLV_DELAY_MS", std::to_string(delay_ms).c_str(), 1);
  }
  void write(const std::string& content) { std::ofstream(hosts, std::ios::trunc) << content; }
  ~Seams() {
    ::unsetenv("FEDPROXY_TEST_HOSTS_FILE");
    ::unsetenv("FEDPROXY_TEST_RESOLV_DELAY_MS");
    std::remove(hosts.c_str());
  }
};
uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
}  // namespace

TEST_CASE("resolver: answers on the loop; concurrent askers share one lookup; the answer is cached") {
  Seams seams("# test\n192.0.2.10 peer.example other.example\n2001:db8::10 peer.example\n");
  Loop loop;
  auto& r = loop.resolver();
  int answers = 0;
  Resolution got;
  bool inside = true;
  for (int i = 0; i < 3; ++i) {
    CHECK(r.resolve("Peer.Example", [&](const Resolution& res) {
      CHECK_FALSE(inside);
      ++answers;
      got = res;
    }) != 0);
  }
  inside = false;
  CHECK(answers == 0);
  loop.run();
  CHECK(answers == 3);
  CHECK(r.lookups_started() == 1);
  CHECK(got.ok);
  CHECK(got.addresses == std::vector<std::string>{"192.0.2.10", "2001:db8::10"});
  REQUIRE(r.fresh("peer.example") != nullptr);
  // A cached answer costs no lookup, and still arrives on a later tick.
  bool again = false;
  r.resolve("peer.example", [&](const Resolution& res) { again = res.ok; });
  CHECK_FALSE(again);
  loop.run();
  CHECK(again);
  CHECK(r.lookups_started() == 1);
}

TEST_CASE("resolver: an unknown name fails with the host and the gai error; the failure is cached") {
  Seams seams("192.0.2.10 peer.example\n");
  Loop loop;
  auto& r = loop.resolver();
  Resolution got;
  got.ok = true;
  r.resolve("nowhere.invalid", [&](const Resolution& res) { got = res; });
  loop.run();
  CHECK_FALSE(got.ok);
  CHECK(got.error.find("nowhere.invalid") != std::string::npos);
  CHECK(got.error.find("EAI_NONAME") != std::string::npos);
  r.resolve("nowhere.invalid", [&](const Resolution&) {});
  loop.run();
  CHECK(r.lookups_started() == 1);  // negative answer cached
}

TEST_CASE("resolver: invalidate makes the next connect see a moved name") {
  Seams seams("192.0.2.1 moving.example\n");
  Loop loop;
  auto& r = loop.resolver();
  r.set_ttls(60000, 5000);
  std::string addr;
  r.resolve("moving.example", [&](const Resolution& res) { addr = res.addresses.at(0); });
  loop.run();
  CHECK(addr == "192.0.2.1");
  seams.write("192.0.2.2 moving.example\n");
  r.resolve("moving.example", [&](const Resolution& res) { addr = res.addresses.at(0); });
  loop.run();
  CHECK(addr == "192.0.2.1");  // still cached
  r.invalidate("moving.example");
  r.resolve("moving.example", [&](const Resolution& res) { addr = res.addresses.at(0); });
  loop.run();
  CHECK(addr == "192.0.2.2");
  CHECK(r.lookups_started() == 2);
}

TEST_CASE("resolver: a cancelled slow lookup neither answers nor holds the loop") {
  Seams seams("192.0.2.1 slow.example\n", 10000);
  uint64_t t0 = steady_ms();
  {
    Loop loop;
    auto& r = loop.resolver();
    bool called = false;
    uint64_t a = r.resolve("slow.example", [&](const Resolution&) { called = true; });
    uint64_t b = r.resolve("slow.example", [&](const Resolution&) { called = true; });
    // Many more names than threadpool slots: the rest wait in the resolver's queue.
    for (int i = 0; i < 50; ++i) r.resolve("n" + std::to_string(i) + ".example", [](const Resolution&) {});
    auto later = std::make_unique<fedproxy::net::Timer>(loop, [&] {
      r.cancel(a);
      r.cancel(b);
      r.close();  // what Loop::close_now does at shutdown
    });
    later->start(50);
    loop.run();
    CHECK_FALSE(called);
    later.reset();
    CHECK(loop.close_now() == 0);  // no request or handle left behind
  }
  CHECK(steady_ms() - t0 < 3000);
  CHECK(fedproxy::net::Resolver::lookups_in_threadpool() == 0);
}

TEST_CASE("resolver: after the TTL the name is looked up again") {
  Seams seams("192.0.2.1 ttl.example\n");
  Loop loop;
  auto& r = loop.resolver();
  r.set_ttls(50, 50);
  std::string addr;
  r.resolve("ttl.example", [&](const Resolution& res) { addr = res.addresses.at(0); });
  loop.run();
  CHECK(addr == "192.0.2.1");
  seams.write("192.0.2.2 ttl.example\n");
  fedproxy::net::Timer after_ttl(loop, [&] {
    r.resolve("ttl.example", [&](const Resolution& res) { addr = res.addresses.at(0); });
  });
  after_ttl.start(80);
  loop.run();
  CHECK(addr == "192.0.2.2");
  CHECK(r.lookups_started() == 2);
}
