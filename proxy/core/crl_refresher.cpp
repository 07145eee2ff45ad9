#include "proxy/core/crl_refresher.hpp"

#include <set>
#include <utility>

#include "policy/host.hpp"

namespace fedproxy::core {

// One GET of one URL; deleted through the loop (its callback runs inside it).
class CrlRefresher::Fetch final : public net::Deletable {
 public:
  Fetch(CrlRefresher& owner, std::string url)
      : owner_(owner), url_(std::move(url)),
        fetch_([this](FetchResult&& r) { owner_.fetch_done(this, url_, std::move(r)); }, kMaxCrlBytes) {}
  void start(UpstreamPool& pool, const std::string& host, const std::string& path) {
    fetch_.start(pool, host, path, "fedproxy-crl", "application/pkix-crl, */*");
  }
  void abandon() { fetch_.abandon(); }

 private:
  CrlRefresher& owner_;
  std::string url_;
  HttpFetch fetch_;
};

CrlRefresher::CrlRefresher(net::Loop& loop, OnFetched on_fetched)
    : loop_(loop), on_fetched_(std::move(on_fetched)) {}

CrlRefresher::~CrlRefresher() { stop(); }

void CrlRefresher::stop() {
  stopped_ = true;
  for (auto& [url, src] : sources_) {
    if (src.in_flight) {
      src.in_flight->abandon();
      loop_.defer_delete(src.in_flight);
      src.in_flight = nullptr;
    }
    src.timer->stop();
  }
  sources_.clear();
}

void CrlRefresher::set_urls(const std::vector<std::string>& urls) {
  if (stopped_) return;
  std::set<std::string> wanted(urls.begin(), urls.end());
  for (auto it = sources_.begin(); it != sources_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    if (it->second.in_flight) {
      it->second.in_flight->abandon();
      loop_.defer_delete(it->second.in_flight);
    }
    it = sources_.erase(it);
  }
  for (const std::string& url : wanted) {
    if (sources_.count(url)) continue;
    auto parsed = policy::parse_http_url(url);
    if (!parsed) continue;  // config validation refused it already
    Source src;
    UpstreamOptions options;
    options.endpoint.kind = policy::Endpoint::Kind::tcp;
    options.endpoint.host = parsed->host.host;
    options.endpoint.port = *parsed->host.port;
    options.endpoint.text = parsed->host.to_string();
    options.name = url;
    options.connect_timeout_ms = 5000;
    options.response_timeout_ms = 30000;
    options.idle_timeout_ms = 1000;
    options.max_idle = 0;  // one fetch an hour: no connection kept
    src.pool = std::make_unique<UpstreamPool>(loop_, std::move(options));
    src.host = parsed->host.to_string();
    src.path = parsed->path;
    src.timer = std::make_unique<net::Timer>(loop_, [this, url] { start_fetch(url); });
    src.timer->unref();
    sources_.emplace(url, std::move(src));
    start_fetch(url);
  }
}

void CrlRefresher::schedule(const std::string& url, uint64_t delay_ms) {
  auto it = sources_.find(url);
  if (stopped_ || it == sources_.end()) return;
  it->second.timer->start(delay_ms);
}

void CrlRefresher::start_fetch(const std::string& url) {
  auto it = sources_.find(url);
  if (stopped_ || it == sources_.end() || it->second.in_flight) return;
  auto* fetch = new Fetch(*this, url);
  it->second.in_flight = fetch;
  fetch->start(*it->second.pool, it->second.host, it->second.path);
}

void CrlRefresher::fetch_done(Fetch* fetch, const std::string& url, FetchResult&& result) {
  loop_.defer_delete(fetch);
  auto it = sources_.find(url);
  if (it == sources_.end() || it->second.in_flight != fetch) return;
  it->second.in_flight = nullptr;
  on_fetched_(url, std::move(result));
}

}  // namespace fedproxy::core
