#include "proxy/app/crl_store.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "certwatch/cert_bundle.hpp"

namespace fedproxy::app {

CrlStore::Outcome CrlStore::accept(const std::string& url, core::FetchResult&& result, const mbedtls_x509_crt& cas,
                                   int64_t now_unix, uint64_t refresh_ms) {
  CrlSource& src = sources_[url];
  src.last_attempt = now_unix;
  Outcome out;
  out.next_fetch_ms = std::min<uint64_t>(refresh_ms, kRetryMs);
  if (!result.error.empty()) {
    out.error = result.error;
  } else if (result.status != 200) {
    out.error = "answered HTTP " + std::to_string(result.status);
  } else if (auto checked = certwatch::check_fetched_crl(result.body, cas); !checked) {
    out.error = checked.message();
  } else if (!src.data.empty() && checked->this_update < src.this_update) {
    // An older CRL than the one in use: a replay would un-revoke.
    out.error = "is older (thisUpdate) than the CRL in use; kept the newer one";
  } else {
    out.changed = result.body != src.data;
    src.data = std::move(result.body);
    src.issuer = checked->issuer;
    src.this_update = checked->this_update;
    src.next_update = checked->next_update;
    src.fetched_at = now_unix;
    src.last_error.clear();
    out.next_fetch_ms = refresh_ms;
    if (src.next_update > now_unix) {
      // Fetch again when the publisher said the next one is due.
      out.next_fetch_ms = std::min<uint64_t>(refresh_ms, static_cast<uint64_t>(src.next_update - now_unix) * 1000);
    }
    out.next_fetch_ms = std::max<uint64_t>(out.next_fetch_ms, 1000);
    return out;
  }
  ++src.failures;
  src.last_error = out.error;
  return out;
}

void CrlStore::forget_others(const std::vector<std::string>& urls) {
  std::set<std::string> keep(urls.begin(), urls.end());
  std::erase_if(sources_, [&](const auto& kv) { return !keep.count(kv.first); });
}

std::map<std::string, std::string> CrlStore::crls() const {
  std::map<std::string, std::string> out;
  for (const auto& [url, src] : sources_) {
    if (!src.data.empty()) out.emplace(url, src.data);
  }
  return out;
}

}  // namespace fedproxy::app
