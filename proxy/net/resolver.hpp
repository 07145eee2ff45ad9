// Host-name resolution off the event loop (ARCHITECTURE "Resolution off the
// loop"). Each Loop owns one Resolver (Loop::resolver()): a DnsCache (TTL,
// negative caching, coalescing) in front of uv_getaddrinfo, which runs the
// blocking getaddrinfo on libuv's threadpool.
//
// - Answers always arrive through the callback on the loop, never inside
//   resolve(); cancel() before the answer means no callback.
// - Threadpool share: libuv's threadpool is process-wide (UV_THREADPOOL_SIZE,
//   default 4) and also serves file work. At most half of it (at least one
//   thread) runs lookups at any time, counted over every loop of the process;
//   further names wait in the resolver's own queue, where a connect deadline
//   that expires simply cancels them.
// - A lookup that loses its last waiter is cancelled (uv_cancel: it is freed
//   without running if it has not started). One already running in a thread
//   cannot be interrupted; its result is still cached. Request memory is
//   owned by the request and freed in its completion callback.
//
// Test seams (read only here, once per resolver; never set them in
// production):
// - FEDPROXY_TEST_HOSTS_FILE=PATH: names are looked up in PATH only
//   ("IP name..." lines, '#' comments, re-read at every lookup), never in
//   the system resolver; a name it lacks fails as EAI_NONAME.
// - FEDPROXY_TEST_RESOLV_DELAY_MS=N: every lookup first holds its
//   threadpool thread for N ms (a slow DNS server), ended early when the
//   lookup is cancelled.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/net/dns_cache.hpp"

namespace fedproxy::net {

class Loop;
class Timer;

struct Resolution {
  bool ok = false;
  std::vector<std::string> addresses;  // IP literals, the system's preferred order
  std::string error;                   // "cannot resolve HOST: reason (EAI_...)"
};

class Resolver {
 public:
  using Done = std::function<void(const Resolution&)>;
  explicit Resolver(Loop& loop);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // egress.dns_ttl_ms / egress.dns_negative_ttl_ms; applies to answers stored from now on.
  void set_ttls(uint64_t ttl_ms, uint64_t negative_ttl_ms);
  // A fresh cached answer for host (no lookup, no waiting), or null.
  const std::vector<std::string>* fresh(const std::string& host);
  // Resolve host; done is called later on the loop. Returns an id for
  // cancel(), or 0 when the resolver is closed (done is never called).
  uint64_t resolve(const std::string& host, Done done);
  void cancel(uint64_t id);
  // A connect to an address of host failed: look it up again next time.
  void invalidate(const std::string& host);
  // A connect to this address of host worked after earlier ones failed:
  // hand it out first while the answer is cached.
  void prefer(const std::string& host, const std::string& address);
  // The loop is closing: no more callbacks; lookups are cancelled.
  void close();

  // Lookups running in the threadpool right now, process-wide, and lookups
  // this resolver started (for tests and metrics).
  static int lookups_in_threadpool();
  uint64_t lookups_started() const { return started_; }

  struct Lookup;  // one request in the threadpool (internal)
  void lookup_done(Lookup* lookup, bool cancelled, Resolution result);

 private:
  struct Waiting {
    std::string host;
    Done done;
    bool ready = false;  // answered from the cache, delivered on the next tick
    Resolution answer;
  };
  void pump();  // start queued lookups while threadpool slots are free
  void start(const std::string& host);
  void on_kick();
  void answer(const std::string& host, const Resolution& r, const std::vector<uint64_t>& ids);

  Loop& loop_;
  DnsCache cache_;
  std::unordered_map<uint64_t, Waiting> waiting_;
  std::deque<std::string> queued_;                  // names waiting for a threadpool slot
  std::unordered_map<std::string, Lookup*> running_;  // names in the threadpool
  std::vector<uint64_t> ready_;
  std::unique_ptr<Timer> kick_;  // delivers cached answers; retries a full threadpool
  uint64_t next_id_ = 1;
  uint64_t started_ = 0;
  bool closed_ = false;
  uint64_t seam_delay_ms_ = 0;
  std::string seam_hosts_file_;
  bool seam_ = false;
};

}  // namespace fedproxy::net
