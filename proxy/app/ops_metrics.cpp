#include "proxy/app/ops_metrics.hpp"

#include "proxy/app/prom_text.hpp"

namespace fedproxy::app {

std::string render_ops_metrics(const OpsMetrics& m) {
  std::string out;
  out.reserve(2048);
  const BuildInfo& b = *m.build;
  prom::family(out, "fedproxy_build_info", "gauge",
               "Always 1; the labels name fedproxy's version and the library versions it runs with.");
  prom::sample(out, "fedproxy_build_info",
               {{"version", b.version}, {"mbedtls", b.mbedtls}, {"libuv", b.libuv}, {"llhttp", b.llhttp}},
               uint64_t{1});

  prom::family(out, "fedproxy_cert_expiry_timestamp_seconds", "gauge",
               "notAfter (unix seconds) of the node certificate, each CA of tls.ca_bundle, each peer's own trust "
               "anchors and the latest certificate each configured peer presented.");
  for (const CertExpiry& c : m.certs) {
    if (c.org.empty()) {
      prom::sample_signed(out, "fedproxy_cert_expiry_timestamp_seconds",
                          {{"cert", c.cert}, {"kind", c.kind}, {"subject", c.subject}}, c.not_after);
    } else {
      prom::sample_signed(out, "fedproxy_cert_expiry_timestamp_seconds",
                          {{"cert", c.cert}, {"kind", c.kind}, {"org", c.org}, {"subject", c.subject}}, c.not_after);
    }
  }

  if (m.crl_next_update) {
    prom::family(out, "fedproxy_crl_next_update_timestamp_seconds", "gauge",
                 "Earliest nextUpdate (unix seconds) of the CRLs loaded from tls.crl and tls.crl_urls.");
    prom::sample_signed(out, "fedproxy_crl_next_update_timestamp_seconds", {}, *m.crl_next_update);
  }
  if (!m.crl_sources.empty()) {
    prom::family(out, "fedproxy_crl_age_seconds", "gauge",
                 "Age (now - thisUpdate) of the CRL in use from each tls.crl_urls entry; absent until one arrived.");
    for (const auto& c : m.crl_sources) {
      if (c.age_s) prom::sample_signed(out, "fedproxy_crl_age_seconds", {{"url", c.url}}, *c.age_s);
    }
    prom::family(out, "fedproxy_crl_fetch_failures_total", "counter",
                 "Fetches of a tls.crl_urls entry that brought no usable CRL (unreachable, not HTTP 200, not a CRL, "
                 "not signed by a CA of tls.ca_bundle, older than the one in use).");
    for (const auto& c : m.crl_sources) {
      prom::sample(out, "fedproxy_crl_fetch_failures_total", {{"url", c.url}}, c.failures);
    }
  }

  const ReloadStats& r = *m.reloads;
  prom::family(out, "fedproxy_reloads_total", "counter",
               "Reloads by result: ok, failed (the old snapshot keeps running), restart_required (applied, but "
               "some changed settings need a restart).");
  for (ReloadResult result : kReloadResults) {
    prom::sample(out, "fedproxy_reloads_total", {{"result", to_string(result)}},
                 r.counts[static_cast<size_t>(result)]);
  }
  prom::family(out, "fedproxy_last_reload_success_timestamp_seconds", "gauge",
               "When the running snapshot was loaded (unix seconds): at start, then at each reload that applied.");
  prom::sample_signed(out, "fedproxy_last_reload_success_timestamp_seconds", {}, r.last_success_unix);
  prom::family(out, "fedproxy_last_reload_successful", "gauge",
               "1 when the last reload applied (ok or restart_required), 0 when it failed.");
  prom::sample(out, "fedproxy_last_reload_successful", {},
               uint64_t{r.last_result == ReloadResult::failed ? 0u : 1u});
  prom::family(out, "fedproxy_restart_required", "gauge",
               "1 per setting that a reload changed and that waits for a restart (key: the config key); "
               "no series when nothing waits.");
  for (const std::string& key : r.pending_restart_keys) {
    prom::sample(out, "fedproxy_restart_required", {{"key", key}}, uint64_t{1});
  }

  // The counters are 0 without an audit log; the gauge is there only with one.
  const OpsMetrics::Audit audit = m.audit.value_or(OpsMetrics::Audit{});
  prom::family(out, "fedproxy_audit_write_failures_total", "counter",
               "Audit log writes that failed (disk full, I/O error): records, gap events and retries.");
  prom::sample(out, "fedproxy_audit_write_failures_total", {}, audit.write_failures);
  prom::family(out, "fedproxy_audit_records_lost_total", "counter",
               "Audit records (requests and events) that were never written; a gap event in the log counts "
               "them once writing works again.");
  prom::sample(out, "fedproxy_audit_records_lost_total", {}, audit.lost_records);
  if (m.audit) {
    prom::family(out, "fedproxy_audit_healthy", "gauge",
                 "1 while audit lines are written, 0 while they cannot be (with audit.on_failure \"reject\", "
                 "requests are refused meanwhile).");
    prom::sample(out, "fedproxy_audit_healthy", {}, uint64_t{audit.healthy ? 1u : 0u});
  }
  return out;
}

}  // namespace fedproxy::app
