// The control-plane part of /metrics: what fedproxy runs (build info), what
// it trusts and until when (certificate expiry, CRL next update), whether
// its reloads apply (result counts, last success, pending restart) and
// whether the audit log is being written. Data-path counters are metrics.hpp's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/app/build_info.hpp"
#include "proxy/app/cert_expiry.hpp"
#include "proxy/app/reload_outcome.hpp"

namespace fedproxy::app {

struct OpsMetrics {
  const BuildInfo* build = nullptr;
  std::vector<CertExpiry> certs;
  std::optional<int64_t> crl_next_update;  // unix seconds; nullopt: no CRL (or none with a nextUpdate)
  // Each tls.crl_urls entry: the age of the CRL in use (now - thisUpdate,
  // nullopt: none yet) and the fetches that brought no usable CRL.
  struct CrlSourceMetrics {
    std::string url;
    std::optional<int64_t> age_s;
    uint64_t failures = 0;
  };
  std::vector<CrlSourceMetrics> crl_sources;
  const ReloadStats* reloads = nullptr;
  struct Audit {
    uint64_t write_failures = 0;  // write attempts that failed (records, gap events, retries)
    uint64_t lost_records = 0;    // records that were never written
    bool healthy = true;          // false while lines cannot be written
  };
  std::optional<Audit> audit;  // nullopt: no audit log configured
};

std::string render_ops_metrics(const OpsMetrics& m);

}  // namespace fedproxy::app
