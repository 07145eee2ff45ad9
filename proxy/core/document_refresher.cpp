#include "proxy/core/document_refresher.hpp"

#include <set>
#include <utility>

namespace fedproxy::core {

// One GET of one key; deleted through the loop (its callback runs inside it).
class DocumentRefresher::Fetch final : public net::Deletable {
 public:
  Fetch(DocumentRefresher& owner, std::string key)
      : owner_(owner), key_(std::move(key)),
        fetch_([this](FetchResult&& r) { owner_.fetch_done(this, key_, std::move(r)); },
               owner.options_.max_body_bytes) {}
  void start(const Target& t) {
    fetch_.start(*t.pool, t.host, t.path, owner_.options_.user_agent, owner_.options_.accept);
  }
  void abandon() { fetch_.abandon(); }

 private:
  DocumentRefresher& owner_;
  std::string key_;
  HttpFetch fetch_;
};

DocumentRefresher::DocumentRefresher(net::Loop& loop, Options options, Resolve resolve, OnFetched on_fetched)
    : loop_(loop), options_(std::move(options)), resolve_(std::move(resolve)), on_fetched_(std::move(on_fetched)) {}

DocumentRefresher::~DocumentRefresher() { stop(); }

void DocumentRefresher::drop(Entry& e) {
  if (e.in_flight) {
    e.in_flight->abandon();
    loop_.defer_delete(e.in_flight);
    e.in_flight = nullptr;
  }
  e.timer->stop();
}

void DocumentRefresher::stop() {
  stopped_ = true;
  for (auto& [key, e] : entries_) drop(e);
  entries_.clear();
}

void DocumentRefresher::set_keys(const std::vector<std::string>& keys) {
  if (stopped_) return;
  std::set<std::string> wanted(keys.begin(), keys.end());
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    drop(it->second);
    it = entries_.erase(it);
  }
  for (const std::string& key : wanted) {
    if (entries_.count(key)) continue;
    Entry e;
    e.timer = std::make_unique<net::Timer>(loop_, [this, key] { start_fetch(key); });
    e.timer->unref();
    entries_.emplace(key, std::move(e));
    start_fetch(key);
  }
}

void DocumentRefresher::schedule(const std::string& key, uint64_t delay_ms) {
  auto it = entries_.find(key);
  if (stopped_ || it == entries_.end()) return;
  it->second.timer->start(delay_ms);
}

void DocumentRefresher::start_fetch(const std::string& key) {
  auto it = entries_.find(key);
  if (stopped_ || it == entries_.end() || it->second.in_flight) return;
  std::string why;
  std::optional<Target> target = resolve_(key, &why);
  if (!target || !target->pool) {
    on_fetched_(key, FetchResult{0, "", why.empty() ? "no way to reach it" : why});
    return;
  }
  auto* fetch = new Fetch(*this, key);
  it->second.in_flight = fetch;
  fetch->start(*target);
}

void DocumentRefresher::fetch_done(Fetch* fetch, const std::string& key, FetchResult&& result) {
  loop_.defer_delete(fetch);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.in_flight != fetch) return;
  it->second.in_flight = nullptr;
  on_fetched_(key, std::move(result));
}

}  // namespace fedproxy::core
