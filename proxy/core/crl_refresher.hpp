// Keeps the CRLs of tls.crl_urls fresh (issue 17): each URL is fetched over
// plain HTTP (distribution points are http://; the CRL is signed, and the
// owner checks that signature before using it), at once, then whenever the
// owner says the next fetch is due. Nothing here judges a CRL: the owner
// (proxy/app) checks it, keeps the last good one, and swaps it in with a
// snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/core/http_fetch.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::core {

class CrlRefresher {
 public:
  using OnFetched = std::function<void(const std::string& url, FetchResult&& result)>;
  static constexpr size_t kMaxCrlBytes = 16u << 20;  // large CAs publish CRLs of a few MiB

  CrlRefresher(net::Loop& loop, OnFetched on_fetched);
  ~CrlRefresher();
  CrlRefresher(const CrlRefresher&) = delete;
  CrlRefresher& operator=(const CrlRefresher&) = delete;

  // The URLs to keep fresh (a reload may change them): a new one is fetched
  // at once, a dropped one is forgotten. URLs must parse (policy::parse_http_url).
  void set_urls(const std::vector<std::string>& urls);
  // After a result: fetch `url` again in `delay_ms`.
  void schedule(const std::string& url, uint64_t delay_ms);
  void stop();

  class Fetch;
  void fetch_done(Fetch* fetch, const std::string& url, FetchResult&& result);

 private:
  struct Source {
    std::unique_ptr<UpstreamPool> pool;
    std::unique_ptr<net::Timer> timer;
    std::string host;  // Host header
    std::string path;
    Fetch* in_flight = nullptr;
  };
  void start_fetch(const std::string& url);

  net::Loop& loop_;
  OnFetched on_fetched_;
  std::map<std::string, Source> sources_;
  bool stopped_ = false;
};

}  // namespace fedproxy::core
