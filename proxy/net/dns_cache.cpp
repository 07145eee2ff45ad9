#include "proxy/net/dns_cache.hpp"

#include <algorithm>
#include <utility>

namespace fedproxy::net {

DnsCache::Answer DnsCache::ask(const std::string& name, uint64_t waiter, uint64_t now) {
  Entry& e = entries_[name];
  Answer a;
  if (is_fresh(e, now)) {
    a.status = e.ok ? Status::fresh : Status::negative;
    a.addresses = e.addresses;
    a.error = e.error;
    return a;
  }
  a.status = Status::pending;
  e.waiters.push_back(waiter);
  if (!e.in_flight) {
    e.in_flight = true;
    a.start_lookup = true;
  }
  return a;
}

const std::vector<std::string>* DnsCache::fresh(const std::string& name, uint64_t now) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || !is_fresh(it->second, now) || !it->second.ok) return nullptr;
  return &it->second.addresses;
}

std::vector<uint64_t> DnsCache::complete(const std::string& name, bool ok, std::vector<std::string> addresses,
                                         std::string error, uint64_t now) {
  Entry& e = entries_[name];
  if (ok && addresses.empty()) {
    ok = false;
    if (error.empty()) error = "no address";
  }
  e.in_flight = false;
  e.has_answer = true;
  e.ok = ok;
  e.addresses = ok ? std::move(addresses) : std::vector<std::string>{};
  e.error = ok ? std::string() : std::move(error);
  e.expires_at = now + (ok ? options_.ttl_ms : options_.negative_ttl_ms);
  std::vector<uint64_t> waiters;
  waiters.swap(e.waiters);
  if (entries_.size() > options_.max_entries) prune(now);
  return waiters;
}

DnsCache::Answer DnsCache::result(const std::string& name) const {
  Answer a;
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.has_answer) {
    a.status = Status::negative;
    a.error = "no answer";
    return a;
  }
  a.status = it->second.ok ? Status::fresh : Status::negative;
  a.addresses = it->second.addresses;
  a.error = it->second.error;
  return a;
}

void DnsCache::cancel(const std::string& name, uint64_t waiter) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  auto& w = it->second.waiters;
  w.erase(std::remove(w.begin(), w.end(), waiter), w.end());
}

bool DnsCache::abort_lookup(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return false;
  Entry& e = it->second;
  if (!e.waiters.empty()) {
    e.in_flight = true;
    return true;
  }
  e.in_flight = false;
  if (!e.has_answer) entries_.erase(it);
  return false;
}

void DnsCache::invalidate(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.has_answer = false;
  it->second.expires_at = 0;
  if (!it->second.in_flight && it->second.waiters.empty()) entries_.erase(it);
}

void DnsCache::prefer(const std::string& name, const std::string& address) {
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.ok) return;
  auto& a = it->second.addresses;
  auto pos = std::find(a.begin(), a.end(), address);
  if (pos != a.end()) std::rotate(a.begin(), pos, pos + 1);
}

size_t DnsCache::drop_waiters() {
  size_t n = 0;
  for (auto& [name, e] : entries_) {
    n += e.waiters.size();
    e.waiters.clear();
  }
  return n;
}

bool DnsCache::in_flight(const std::string& name) const {
  auto it = entries_.find(name);
  return it != entries_.end() && it->second.in_flight;
}

size_t DnsCache::waiters(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? 0 : it->second.waiters.size();
}

void DnsCache::prune(uint64_t now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    if (!e.in_flight && e.waiters.empty() && !is_fresh(e, now)) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace fedproxy::net
