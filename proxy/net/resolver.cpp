#include "proxy/net/resolver.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <uv.h>

#include "proxy/net/loop.hpp"

namespace fedproxy::net {

namespace {

// Lookups in the threadpool, summed over every loop of the process.
std::atomic<int> g_running{0};

int max_running() {
  static const int limit = [] {
    long size = 4;  // libuv's default
    if (const char* v = std::getenv("UV_THREADPOOL_SIZE"); v && *v) size = std::strtol(v, nullptr, 10);
    size = std::clamp(size, 1L, 1024L);
    return static_cast<int>(std::max(1L, size / 2));
  }();
  return limit;
}

bool take_slot() {
  int cur = g_running.load();
  while (cur < max_running()) {
    if (g_running.compare_exchange_weak(cur, cur + 1)) return true;
  }
  return false;
}

// How long a resolver waits before trying again for a threadpool slot that
// another loop holds.
constexpr uint64_t kSlotRetryMs = 20;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string error_text(const std::string& host, int status, const char* where = nullptr) {
  std::string out = "cannot resolve " + host + ": " + uv_strerror(status) + " (" + uv_err_name(status);
  if (where) out += std::string(", ") + where;
  return out + ")";
}

// The addresses of an addrinfo list as IP literals, in order, without duplicates.
std::vector<std::string> addresses_of(const addrinfo* res) {
  std::vector<std::string> out;
  for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ai->ai_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<const sockaddr_in*>(ai->ai_addr), buf, sizeof(buf));
    } else if (ai->ai_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(ai->ai_addr), buf, sizeof(buf));
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
  }
  return out;
}

}  // namespace

struct Resolver::Lookup {
  union {
    uv_req_t req;
    uv_getaddrinfo_t gai;
    uv_work_t work;
  } r;
  Resolver* owner = nullptr;
  std::string host;
  // Seam lookups (uv_queue_work): inputs, and the result computed in the thread.
  uint64_t delay_ms = 0;
  std::string hosts_file;
  std::atomic<bool> abandoned{false};
  Resolution result;
  bool thread_cancelled = false;
};

namespace {

void on_getaddrinfo(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* l = static_cast<Resolver::Lookup*>(req->data);
  Resolution r;
  if (status == 0) {
    r.addresses = addresses_of(res);
    r.ok = !r.addresses.empty();
    if (!r.ok) r.error = "cannot resolve " + l->host + ": no IPv4 or IPv6 address";
  } else if (status != UV_ECANCELED) {
    r.error = error_text(l->host, status);
  }
  uv_freeaddrinfo(res);
  l->owner->lookup_done(l, status == UV_ECANCELED, std::move(r));
  delete l;
}

// Test seam, in the threadpool: the delay, then the hosts file (or, without
// one, the system resolver).
void seam_work(uv_work_t* req) {
  auto* l = static_cast<Resolver::Lookup*>(req->data);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(l->delay_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (l->abandoned.load()) {
      l->thread_cancelled = true;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (l->hosts_file.empty()) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(l->host.c_str(), nullptr, &hints, &res);
    if (rc == 0) {
      l->result.addresses = addresses_of(res);
      l->result.ok = !l->result.addresses.empty();
      ::freeaddrinfo(res);
    }
    if (!l->result.ok) l->result.error = "cannot resolve " + l->host + ": " + gai_strerror(rc);
    return;
  }
  std::ifstream in(l->hosts_file);
  std::string line;
  const std::string want = lower(l->host);
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string ip, name;
    if (!(words >> ip)) continue;
    while (words >> name) {
      if (lower(name) == want && std::find(l->result.addresses.begin(), l->result.addresses.end(), ip) ==
                                     l->result.addresses.end()) {
        l->result.addresses.push_back(ip);
      }
    }
  }
  l->result.ok = !l->result.addresses.empty();
  if (!l->result.ok) l->result.error = error_text(l->host, UV_EAI_NONAME, "test hosts file");
}

void seam_after(uv_work_t* req, int status) {
  auto* l = static_cast<Resolver::Lookup*>(req->data);
  bool cancelled = status == UV_ECANCELED || l->thread_cancelled;
  l->owner->lookup_done(l, cancelled, std::move(l->result));
  delete l;
}

}  // namespace

Resolver::Resolver(Loop& loop) : loop_(loop), kick_(std::make_unique<Timer>(loop, [this] { on_kick(); })) {
  if (const char* v = std::getenv("FEDPROXY_TEST_RESOLV_DELAY_MS"); v && *v) {
    seam_delay_ms_ = std::strtoull(v, nullptr, 10);
    seam_ = true;
  }
  if (const char* v = std::getenv("FEDPROXY_TEST_HOSTS_FILE"); v && *v) {
    seam_hosts_file_ = v;
    seam_ = true;
  }
}

// close() ran (Loop::close_now), and the loop ran every request to its end.
Resolver::~Resolver() = default;

int Resolver::lookups_in_threadpool() { return g_running.load(); }

void Resolver::set_ttls(uint64_t ttl_ms, uint64_t negative_ttl_ms) {
  DnsCache::Options o = cache_.options();
  o.ttl_ms = ttl_ms;
  o.negative_ttl_ms = negative_ttl_ms;
  cache_.set_options(o);
}

const std::vector<std::string>* Resolver::fresh(const std::string& host) {
  return cache_.fresh(lower(host), loop_.now_ms());
}

uint64_t Resolver::resolve(const std::string& host_in, Done done) {
  if (closed_) return 0;
  const std::string host = lower(host_in);
  uint64_t id = next_id_++;
  DnsCache::Answer a = cache_.ask(host, id, loop_.now_ms());
  Waiting& w = waiting_[id];
  w.host = host;
  w.done = std::move(done);
  if (a.status != DnsCache::Status::pending) {
    w.ready = true;
    w.answer.ok = a.status == DnsCache::Status::fresh;
    w.answer.addresses = std::move(a.addresses);
    w.answer.error = std::move(a.error);
    ready_.push_back(id);
    kick_->start(0);
    return id;
  }
  if (a.start_lookup) {
    queued_.push_back(host);
    pump();
  }
  return id;
}

void Resolver::cancel(uint64_t id) {
  auto it = waiting_.find(id);
  if (it == waiting_.end()) return;
  std::string host = std::move(it->second.host);
  bool ready = it->second.ready;
  waiting_.erase(it);
  if (ready || closed_) return;
  cache_.cancel(host, id);
  if (cache_.waiters(host) != 0) return;
  // Nobody waits for this name any more: a lookup still queued in the
  // threadpool is dropped (its callback reports UV_ECANCELED); a seam delay
  // ends; a getaddrinfo already running finishes and is cached. A name still
  // in our own queue is skipped by pump().
  if (auto r = running_.find(host); r != running_.end()) {
    r->second->abandoned.store(true);
    uv_cancel(&r->second->r.req);
  }
}

void Resolver::invalidate(const std::string& host) { cache_.invalidate(lower(host)); }

void Resolver::prefer(const std::string& host, const std::string& address) { cache_.prefer(lower(host), address); }

void Resolver::close() {
  if (closed_) return;
  closed_ = true;
  kick_.reset();  // before the loop closes its handles
  waiting_.clear();
  ready_.clear();
  queued_.clear();
  cache_.drop_waiters();
  for (auto& [host, l] : running_) {
    l->abandoned.store(true);
    uv_cancel(&l->r.req);
  }
}

void Resolver::on_kick() {
  std::vector<uint64_t> ids;
  ids.swap(ready_);
  for (uint64_t id : ids) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) continue;  // cancelled meanwhile
    Waiting w = std::move(it->second);
    waiting_.erase(it);
    w.done(w.answer);
    if (closed_) return;
  }
  pump();
}

void Resolver::pump() {
  while (!closed_ && !queued_.empty()) {
    const std::string& host = queued_.front();
    if (cache_.waiters(host) == 0) {
      // Every asker gave up while the name waited for a slot.
      cache_.abort_lookup(host);
      queued_.pop_front();
      continue;
    }
    if (!take_slot()) {
      if (kick_) kick_->start(kSlotRetryMs);
      return;
    }
    std::string name = std::move(queued_.front());
    queued_.pop_front();
    start(name);
  }
}

void Resolver::start(const std::string& host) {
  auto* l = new Lookup;
  l->owner = this;
  l->host = host;
  l->r.req.data = l;
  int rc;
  if (seam_) {
    l->delay_ms = seam_delay_ms_;
    l->hosts_file = seam_hosts_file_;
    rc = uv_queue_work(loop_.raw(), &l->r.work, seam_work, seam_after);
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = uv_getaddrinfo(loop_.raw(), &l->r.gai, on_getaddrinfo, host.c_str(), nullptr, &hints);
  }
  if (rc != 0) {
    // Not started: no callback will come. Answer on this call's terms.
    g_running.fetch_sub(1);
    delete l;
    Resolution r;
    r.error = error_text(host, rc);
    answer(host, r, cache_.complete(host, false, {}, r.error, loop_.now_ms()));
    return;
  }
  running_[host] = l;
  ++started_;
}

void Resolver::lookup_done(Lookup* l, bool cancelled, Resolution result) {
  g_running.fetch_sub(1);
  if (auto it = running_.find(l->host); it != running_.end() && it->second == l) running_.erase(it);
  if (closed_) return;
  if (cancelled) {
    // Askers that came after the cancel still need a lookup.
    if (cache_.abort_lookup(l->host)) queued_.push_back(l->host);
  } else {
    std::vector<uint64_t> ids = cache_.complete(l->host, result.ok, result.addresses, result.error, loop_.now_ms());
    answer(l->host, result, ids);
  }
  if (!closed_) pump();
}

void Resolver::answer(const std::string&, const Resolution& r, const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) continue;
    Done done = std::move(it->second.done);
    waiting_.erase(it);
    done(r);  // may resolve or cancel other names
    if (closed_) return;
  }
}

}  // namespace fedproxy::net
