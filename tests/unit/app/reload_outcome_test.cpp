#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/app/reload_outcome.hpp"

using fedproxy::app::ReloadResult;
using fedproxy::app::ReloadStats;
using fedproxy::app::restart_required_keys;
using fedproxy::config::Config;
using fedproxy::config::Endpoint;
using Keys = std::vector<std::string>;

namespace {

Endpoint ep(const std::string& text) {
  std::string error;
  auto e = fedproxy::config::parse_endpoint(text, &error);
  REQUIRE_MESSAGE(e, error);
  return *e;
}

Config base() {
  Config c;
  c.ingress.listen = ep("0.0.0.0:8443");
  c.ingress.upstream = ep("127.0.0.1:8080");
  c.egress.listen = ep("127.0.0.1:15001");
  c.admin.listen = ep("127.0.0.1:9901");
  c.peers.push_back({});
  c.peers.back().org = "partner";
  return c;
}

}  // namespace

TEST_CASE("restart keys: nothing changed, or only what applies at run time") {
  Config a = base();
  Config b = base();
  CHECK(restart_required_keys(a, b).empty());
  b.tls.watch_interval_ms = 1000;
  b.timeouts.shutdown_grace_ms = 1;
  b.log_requests = false;
  b.peers.back().trust_level = "none";
  b.routes.push_back({"/x", "x", false});
  b.admin.tokens.push_back({"ops", "/tmp/t", "admin.tokens[0].file"});
  b.audit.on_failure = fedproxy::config::AuditConfig::OnFailure::continue_;  // AuditSink::set_on_failure
  CHECK(restart_required_keys(a, b).empty());
}

TEST_CASE("restart keys: each listen address and workers is named") {
  Config a = base();
  Config b = base();
  b.ingress.listen = ep("0.0.0.0:9443");
  CHECK(restart_required_keys(a, b) == Keys{"ingress.listen"});
  b = base();
  b.egress.listen.reset();  // egress switched off
  CHECK(restart_required_keys(a, b) == Keys{"egress.listen"});
  b = base();
  b.admin.listen = ep("unix:/run/fedproxy/admin.sock");
  CHECK(restart_required_keys(a, b) == Keys{"admin.listen"});
  b = base();
  b.workers = 4;
  CHECK(restart_required_keys(a, b) == Keys{"workers"});
}

TEST_CASE("restart keys: several at once, in a fixed order") {
  Config a = base();
  Config b = base();
  b.workers = 2;
  b.timeouts.idle_ms = 5;
  b.ingress.listen = ep("[::1]:8443");
  b.ingress.upstream = ep("unix:/run/app.sock");
  CHECK(restart_required_keys(a, b) == Keys{"ingress.listen", "workers", "ingress.upstream"});
}

TEST_CASE("restart keys: start-time objects; connection options apply at a reload") {
  Config a = base();
  Config b = base();
  b.audit.path = "/var/log/fedproxy/audit.jsonl";
  b.limits.max_connections = 5;
  b.egress.heartbeat_interval_ms = 1;
  CHECK(restart_required_keys(a, b) == Keys{"audit.path", "egress.heartbeat_interval_ms"});
  // Applied by Worker::apply: never a restart.
  b = base();
  b.timeouts.header_ms = 1;
  b.timeouts.handshake_ms = 2;
  b.timeouts.upstream_response_ms = 3;
  b.limits.max_header_bytes = 4096;
  b.limits.max_requests_per_conn = 7;
  b.ingress.upstream_pool_max_idle = 1;
  CHECK(restart_required_keys(a, b).empty());
}

TEST_CASE("restart keys: switching between policy and authenticate_only mode") {
  Config a = base();
  Config b = base();
  b.peers.clear();
  b.authenticate_only = true;
  CHECK(restart_required_keys(a, b) == Keys{"authenticate_only"});
  // Still policy mode with grants only: no switch.
  fedproxy::config::Grant g;
  g.where = "grants[0]";
  b.grants.push_back(g);
  CHECK(restart_required_keys(a, b).empty());
}

TEST_CASE("stats: counts per result; a failure keeps the last success and the pending keys") {
  ReloadStats s;
  s.record(ReloadResult::restart_required, 100, {"workers"});
  CHECK(s.counts[static_cast<size_t>(ReloadResult::restart_required)] == 1);
  CHECK(s.last_success_unix == 100);
  CHECK(s.pending_restart_keys == Keys{"workers"});
  s.record(ReloadResult::failed, 200, {});
  CHECK(s.last_result == ReloadResult::failed);
  CHECK(s.last_success_unix == 100);
  CHECK(s.pending_restart_keys == Keys{"workers"});
  s.record(ReloadResult::ok, 300, {});  // the change was reverted
  CHECK(s.pending_restart_keys.empty());
  CHECK(s.last_success_unix == 300);
  CHECK(s.counts == decltype(s.counts){1, 1, 1});
  CHECK(std::string(to_string(ReloadResult::restart_required)) == "restart_required");
}
