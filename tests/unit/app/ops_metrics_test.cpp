#include <doctest/doctest.h>

#include <string>

#include "proxy/app/ops_metrics.hpp"

using namespace fedproxy::app;

namespace {

OpsMetrics base(const ReloadStats& reloads) {
  static const BuildInfo build{"1.2.3", "3.6.4", "1.48.0", "9.2.1"};
  OpsMetrics m;
  m.build = &build;
  m.reloads = &reloads;
  return m;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("ops metrics: build info, reloads by result, last success, audit failures") {
  ReloadStats r;
  r.last_success_unix = 1700000000;
  r.record(ReloadResult::failed, 1700000100, {});
  OpsMetrics m = base(r);
  m.audit = OpsMetrics::Audit{3, 2, false};
  std::string t = render_ops_metrics(m);
  CHECK(has_line(t, "fedproxy_build_info{version=\"1.2.3\",mbedtls=\"3.6.4\",libuv=\"1.48.0\",llhttp=\"9.2.1\"} 1"));
  CHECK(has_line(t, "fedproxy_reloads_total{result=\"ok\"} 0"));
  CHECK(has_line(t, "fedproxy_reloads_total{result=\"failed\"} 1"));
  CHECK(has_line(t, "fedproxy_reloads_total{result=\"restart_required\"} 0"));
  CHECK(has_line(t, "fedproxy_last_reload_success_timestamp_seconds 1700000000"));
  CHECK(has_line(t, "fedproxy_last_reload_successful 0"));
  CHECK(has_line(t, "fedproxy_audit_write_failures_total 3"));
  CHECK(has_line(t, "fedproxy_audit_records_lost_total 2"));
  CHECK(has_line(t, "fedproxy_audit_healthy 0"));
  CHECK(t.find("fedproxy_restart_required{") == std::string::npos);
  CHECK(t.find("fedproxy_crl_next_update_timestamp_seconds") == std::string::npos);  // no CRL: absent
}

TEST_CASE("ops metrics: pending restart keys, CRL, certificates with escaped subjects") {
  ReloadStats r;
  r.record(ReloadResult::restart_required, 1700000200, {"ingress.listen", "workers"});
  OpsMetrics m = base(r);
  m.crl_next_update = 1800000000;
  m.certs.push_back({"node", "node", "", "CN=node \"a\"", 1900000000});
  m.certs.push_back({"peer:partner", "peer", "partner", "CN=p", 1950000000});
  std::string t = render_ops_metrics(m);
  CHECK(has_line(t, "fedproxy_restart_required{key=\"ingress.listen\"} 1"));
  CHECK(has_line(t, "fedproxy_restart_required{key=\"workers\"} 1"));
  CHECK(has_line(t, "fedproxy_last_reload_successful 1"));
  // No audit log: nothing lost, and no health to report.
  CHECK(has_line(t, "fedproxy_audit_write_failures_total 0"));
  CHECK(has_line(t, "fedproxy_audit_records_lost_total 0"));
  CHECK(t.find("fedproxy_audit_healthy") == std::string::npos);
  CHECK(has_line(t, "fedproxy_crl_next_update_timestamp_seconds 1800000000"));
  CHECK(has_line(t, "fedproxy_cert_expiry_timestamp_seconds{cert=\"node\",kind=\"node\",subject=\"CN=node \\\"a\\\"\"} 1900000000"));
  CHECK(has_line(t,
                 "fedproxy_cert_expiry_timestamp_seconds{cert=\"peer:partner\",kind=\"peer\",org=\"partner\",subject=\"CN=p\"} "
                 "1950000000"));
}
