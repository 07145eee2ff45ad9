// The host-name cache of the resolver, without I/O: time is an input (`now`,
// milliseconds on any monotonic clock), lookups are started by the caller
// when told to, and their results are handed back with complete().
//
// - A fresh answer (addresses, or a failure: negative caching) is served
//   until it expires: `ttl_ms` after a success, `negative_ttl_ms` after a
//   failure. getaddrinfo reports no DNS TTL, so both are configured
//   (egress.dns_ttl_ms, egress.dns_negative_ttl_ms).
// - Asking for a name with no fresh answer registers the asker as a waiter;
//   only the first asker is told to start a lookup, later ones wait for the
//   same one (coalescing).
// - invalidate() forgets the answer of a name (a connect to it failed: the
//   next connect looks it up again).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace fedproxy::net {

class DnsCache {
 public:
  struct Options {
    uint64_t ttl_ms = 30000;
    uint64_t negative_ttl_ms = 5000;
    size_t max_entries = 10000;  // expired entries are pruned beyond this
  };
  enum class Status {
    fresh,     // `addresses` holds the cached answer
    negative,  // the last lookup failed and that is still cached: `error`
    pending,   // the asker was registered as a waiter; see start_lookup
  };
  struct Answer {
    Status status = Status::pending;
    bool start_lookup = false;  // pending: no lookup is in flight, the caller starts one
    std::vector<std::string> addresses;
    std::string error;
  };

  DnsCache() = default;
  explicit DnsCache(Options options) : options_(options) {}
  void set_options(const Options& options) { options_ = options; }
  const Options& options() const { return options_; }

  // The cached answer for name, or registers `waiter` (an id chosen by the
  // caller, unique among the waiters of the cache).
  Answer ask(const std::string& name, uint64_t waiter, uint64_t now);
  // Only a fresh positive answer, registering nothing (null when none).
  const std::vector<std::string>* fresh(const std::string& name, uint64_t now) const;
  // The lookup for name finished: cache its result and return the waiters
  // to answer (in the order they asked). ok with no addresses is a failure.
  std::vector<uint64_t> complete(const std::string& name, bool ok, std::vector<std::string> addresses,
                                 std::string error, uint64_t now);
  // The answer complete() stored (valid until the next call that changes the cache).
  Answer result(const std::string& name) const;
  // A waiter no longer wants its answer. The lookup (if any) still completes.
  void cancel(const std::string& name, uint64_t waiter);
  // The lookup for name was dropped (cancelled) without a result. True when
  // waiters remain: the caller must start a new lookup (it counts as in
  // flight again).
  bool abort_lookup(const std::string& name);
  // Forget the cached answer of name; a lookup in flight is not affected.
  void invalidate(const std::string& name);
  // Move address to the front of name's cached answer (it connected when
  // earlier ones did not). The TTL is unchanged; unknown addresses are ignored.
  void prefer(const std::string& name, const std::string& address);
  // Drop every waiter (the resolver closes); returns how many there were.
  size_t drop_waiters();

  size_t size() const { return entries_.size(); }
  bool in_flight(const std::string& name) const;
  size_t waiters(const std::string& name) const;

 private:
  struct Entry {
    bool has_answer = false;
    bool ok = false;
    std::vector<std::string> addresses;
    std::string error;
    uint64_t expires_at = 0;  // the answer is fresh while now < expires_at
    bool in_flight = false;
    std::vector<uint64_t> waiters;
  };
  static bool is_fresh(const Entry& e, uint64_t now) { return e.has_answer && now < e.expires_at; }
  void prune(uint64_t now);
  Options options_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace fedproxy::net
