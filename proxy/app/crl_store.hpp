// The CRLs fetched from tls.crl_urls (issue 17): per URL the last good CRL,
// when it came, and why the latest attempt failed. Pure: fetch results and
// the clock come in, the decision (use it? when to fetch again?) goes out;
// Runtime does the fetching (core::CrlRefresher) and the snapshot swap.
//
// A fetched CRL is used only when it parses, is signed by a CA of
// tls.ca_bundle and is not older (thisUpdate) than the one in use; else the
// one in use stays (a stale one keeps failing closed, SPEC §2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <mbedtls/x509_crt.h>

#include "proxy/core/http_fetch.hpp"

namespace fedproxy::app {

struct CrlSource {
  std::string data;          // the CRL in use, "" = none yet
  std::string issuer;
  int64_t this_update = 0;   // of `data`, unix seconds
  int64_t next_update = 0;   // 0 = none stated
  int64_t fetched_at = 0;    // when `data` arrived
  int64_t last_attempt = 0;
  std::string last_error;    // of the latest attempt, "" = it succeeded
  uint64_t failures = 0;     // attempts that brought no usable CRL
};

class CrlStore {
 public:
  struct Outcome {
    bool changed = false;       // a new CRL is in use: build a snapshot
    uint64_t next_fetch_ms = 0; // when to fetch this URL again
    std::string error;          // why this attempt brought nothing usable
  };
  static constexpr uint64_t kRetryMs = 30000;  // after a failure (capped by refresh_ms)

  Outcome accept(const std::string& url, core::FetchResult&& result, const mbedtls_x509_crt& cas,
                 int64_t now_unix, uint64_t refresh_ms);
  void forget_others(const std::vector<std::string>& urls);  // a reload dropped some URLs
  // url → CRL, for the snapshot (URLs without one are left out).
  std::map<std::string, std::string> crls() const;
  const std::map<std::string, CrlSource>& sources() const { return sources_; }

 private:
  std::map<std::string, CrlSource> sources_;
};

}  // namespace fedproxy::app
