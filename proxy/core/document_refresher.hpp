// Fetches a set of documents again and again, each when its owner says:
// the CRLs of tls.crl_urls and the peers' trust bundles (issue 17). At once
// for a new key, then at the delay the owner gives after each result. What a
// key is fetched over (a pool, Host, path) is asked at each fetch, so a
// reload that replaces the egress pools is followed. Nothing here judges a
// document; the owner does.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/core/http_fetch.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::core {

class DocumentRefresher {
 public:
  struct Target {
    UpstreamPool* pool = nullptr;
    std::string host;  // Host header
    std::string path;  // origin-form
  };
  // nullopt: the key cannot be fetched now (the reason goes to on_fetched).
  using Resolve = std::function<std::optional<Target>(const std::string& key, std::string* why)>;
  using OnFetched = std::function<void(const std::string& key, FetchResult&& result)>;
  struct Options {
    size_t max_body_bytes = 1 << 20;
    std::string user_agent = "fedproxy";
    std::string accept = "*/*";
  };

  DocumentRefresher(net::Loop& loop, Options options, Resolve resolve, OnFetched on_fetched);
  ~DocumentRefresher();
  DocumentRefresher(const DocumentRefresher&) = delete;
  DocumentRefresher& operator=(const DocumentRefresher&) = delete;

  // The keys to keep fresh (a reload may change them): a new one is fetched
  // at once, a dropped one is forgotten (its fetch abandoned).
  void set_keys(const std::vector<std::string>& keys);
  // After a result: fetch `key` again in `delay_ms`.
  void schedule(const std::string& key, uint64_t delay_ms);
  void stop();

  class Fetch;
  void fetch_done(Fetch* fetch, const std::string& key, FetchResult&& result);

 private:
  struct Entry {
    std::unique_ptr<net::Timer> timer;
    Fetch* in_flight = nullptr;
  };
  void start_fetch(const std::string& key);
  void drop(Entry& e);

  net::Loop& loop_;
  Options options_;
  Resolve resolve_;
  OnFetched on_fetched_;
  std::map<std::string, Entry> entries_;
  bool stopped_ = false;
};

}  // namespace fedproxy::core
