#include "proxy/app/runtime.hpp"

#include <csignal>

#include "proxy/app/log.hpp"

namespace fedproxy::app {

namespace {

core::IngressOptions ingress_options(const policy::Config& cfg) {
  core::IngressOptions o;
  o.parser_limits.max_request_line = cfg.limits.max_request_line_bytes;
  o.parser_limits.max_header_bytes = cfg.limits.max_header_bytes;
  o.parser_limits.max_header_count = cfg.limits.max_header_count;
  o.max_connections = cfg.limits.max_connections;
  o.handshake_timeout_ms = cfg.timeouts.handshake_ms;
  o.header_timeout_ms = cfg.timeouts.header_ms;
  o.idle_timeout_ms = cfg.timeouts.idle_ms;
  o.max_conn_lifetime_ms = cfg.limits.max_conn_lifetime_ms;
  o.max_requests_per_conn = cfg.limits.max_requests_per_conn;
  o.upstream.endpoint = cfg.ingress.upstream;
  o.upstream.connect_timeout_ms = cfg.timeouts.upstream_connect_ms;
  o.upstream.response_timeout_ms = cfg.timeouts.upstream_response_ms;
  o.upstream.idle_timeout_ms = cfg.timeouts.idle_ms;
  o.upstream.max_idle = cfg.ingress.upstream_pool_max_idle;
  return o;
}

int fatal(const std::string& message) {
  LogLine("fatal", message);
  return 2;
}

}  // namespace

Runtime::Runtime(std::string config_path, std::shared_ptr<const Snapshot> snapshot)
    : config_path_(std::move(config_path)), snap_(std::move(snapshot)) {}

Runtime::~Runtime() = default;

int Runtime::run() {
  // Valid until the first reload only: nothing below keeps it across loop_.run().
  const policy::Config& cfg = snap_->config;
  if (!cfg.audit.path.empty()) {
    std::string error;
    audit_ = AuditSink::open(cfg.audit.path, &error);
    if (!audit_) return fatal(error);
    events_.set_audit(audit_.get());
  }
  if (snap_->policy) {
    policy_ = std::make_unique<core::PolicyAuthorizer>(snap_->policy, snap_->server_tls == nullptr);
  } else {
    LogLine("warn", "authenticate_only: no peer or grant policy; every client whose certificate verifies is forwarded");
  }
  // Signals first: a SIGHUP right after the `listening` line must find its
  // handler, not the default action (which would end the process).
  sigterm_ = std::make_unique<net::SignalWatcher>(loop_, SIGTERM, [this] { shutdown("SIGTERM"); });
  sigint_ = std::make_unique<net::SignalWatcher>(loop_, SIGINT, [this] { shutdown("SIGINT"); });
  sighup_ = std::make_unique<net::SignalWatcher>(loop_, SIGHUP, [this] {
    debouncer_.request_now(static_cast<int64_t>(loop_.now_ms()));
    on_reload_due("SIGHUP");
  });
  sigusr1_ = std::make_unique<net::SignalWatcher>(loop_, SIGUSR1, [this] {
    if (!audit_) return;
    std::string error;
    if (audit_->reopen(&error)) {
      LogLine("info", "audit log reopened").str("path", audit_->path());
    } else {
      LogLine("error", "audit log reopen failed").str("error", error);
    }
  });
  if (!start_listeners()) return 2;

  watch_current_files();
  watch_.poll();  // baseline
  poll_timer_ = std::make_unique<net::Timer>(loop_, [this] { poll_files(); });
  poll_timer_->start(cfg.tls.watch_interval_ms, cfg.tls.watch_interval_ms);
  poll_timer_->unref();
  reload_timer_ = std::make_unique<net::Timer>(loop_, [this] { on_reload_due("file change"); });
  reload_timer_->unref();
  if (!snap_->server_tls) {
    LogLine("warn", "insecure mode: ingress is plain HTTP; peer identity comes from X-Federation-Dev-Peer");
    insecure_timer_ = std::make_unique<net::Timer>(loop_, [] {
      LogLine("warn", "insecure mode: ingress is plain HTTP; peer identity comes from X-Federation-Dev-Peer");
    });
    insecure_timer_->start(60000, 60000);
  }
  log_expiry_warnings();
  expiry_timer_ = std::make_unique<net::Timer>(loop_, [this] { log_expiry_warnings(); });
  expiry_timer_->start(86400000, 86400000);
  expiry_timer_->unref();
  if (audit_) audit_->event("start", {{"node", cfg.node.org}, {"config", config_path_}});
  LogLine("info", "started").str("node", cfg.node.org).str("config", config_path_);
  loop_.run();
  // Not `cfg`: a reload during the run replaced (and freed) that snapshot.
  if (audit_) {
    audit_->event("stop", {{"node", snap_->config.node.org}, {"requests", std::to_string(events_.requests())}});
  }
  LogLine stopped("info", "stopped");
  stopped.num("requests", static_cast<int64_t>(events_.requests()));
  if (audit_) stopped.str("audit_chain_head", audit_->chain_head());
  return 0;
}

bool Runtime::start_listeners() {
  const policy::Config& cfg = snap_->config;
  core::Authorizer& authorizer = policy_ ? static_cast<core::Authorizer&>(*policy_) : pass_through_;
  ingress_ = std::make_unique<core::IngressServer>(loop_, ingress_options(cfg), snap_->server_tls, authorizer,
                                                   events_);
  ingress_->set_node_manifest(snap_->node_manifest);
  std::string error;
  if (!ingress_->listen(cfg.ingress.listen, &error)) {
    fatal(error);
    return false;
  }
  LogLine("info", "listening")
      .str("listener", "ingress")
      .str("address", ingress_->bound_address())
      .boolean("tls", snap_->server_tls != nullptr);
  if (cfg.egress.listen) {
    core::IngressOptions opts = ingress_options(cfg);
    opts.direction = "egress";
    opts.unavailable_code = "peer_unavailable";
    opts.unavailable_message = "The peer cannot be reached.";
    opts.timeout_message = "The peer did not answer in time.";
    opts.invalid_response_message = "The peer sent an invalid response.";
    egress_router_ = std::make_unique<core::EgressRouter>(loop_, opts.upstream);
    for (const auto& p : egress_router_->set_peers(snap_->policy.get(), snap_->client_tls)) {
      LogLine("warn", "egress peer unusable").str("problem", p);
    }
    egress_ = std::make_unique<core::IngressServer>(loop_, opts, nullptr, *egress_router_, events_);
    if (!egress_->listen(*cfg.egress.listen, &error)) {
      fatal(error);
      return false;
    }
    LogLine("info", "listening").str("listener", "egress").str("address", egress_->bound_address());
    liveness_ = std::make_unique<core::PeerLiveness>(
        loop_, *egress_router_, cfg.egress.heartbeat_interval_ms,
        [this](const std::string& peer, core::PeerState from, core::PeerState to, const std::string& detail) {
          LogLine(to == core::PeerState::degraded ? "warn" : "info", "peer state changed")
              .str("peer", peer)
              .str("from", core::to_string(from))
              .str("to", core::to_string(to))
              .str("detail", detail);
          if (audit_) {
            audit_->event("peer.state_changed",
                          {{"peer", peer}, {"from", core::to_string(from)}, {"to", core::to_string(to)}, {"detail", detail}});
          }
        });
  }
  if (cfg.admin.listen) {
    admin_ = std::make_unique<core::AdminServer>(loop_, *this);
    if (!admin_->listen(*cfg.admin.listen, &error)) {
      fatal(error);
      return false;
    }
    LogLine("info", "listening").str("listener", "admin").str("address", admin_->bound_address());
  }
  probe_ = std::make_unique<UpstreamProbe>(loop_, cfg.ingress.upstream, cfg.timeouts.upstream_connect_ms);
  return true;
}

void Runtime::shutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  LogLine("info", "shutting down")
      .str("signal", why)
      .num("active_connections", static_cast<int64_t>(ingress_->active_sessions()))
      .num("grace_ms", snap_->config.timeouts.shutdown_grace_ms);
  ingress_->begin_shutdown();
  if (egress_) {
    liveness_->stop();
    egress_->begin_shutdown();
    egress_router_->close_idle();
  }
  if (admin_) admin_->close();
  probe_->stop();
  insecure_timer_.reset();
  // The loop ends when the last connection is gone; the grace timer only
  // forces that, it does not keep the loop alive by itself.
  grace_timer_ = std::make_unique<net::Timer>(loop_, [this] {
    LogLine("warn", "grace period over: closing remaining connections")
        .num("active_connections", static_cast<int64_t>(ingress_->active_sessions()));
    ingress_->close_all();
    if (egress_) egress_->close_all();
  });
  grace_timer_->start(snap_->config.timeouts.shutdown_grace_ms);
  grace_timer_->unref();
  sigterm_.reset();
  sigint_.reset();
  sighup_.reset();
  sigusr1_.reset();
  poll_timer_.reset();
  reload_timer_.reset();
  expiry_timer_.reset();
}

void Runtime::log_expiry_warnings() {
  last_expiry_warnings_ = expiry_warnings();
  for (const auto& w : last_expiry_warnings_) LogLine("warn", "expiry").str("warning", w);
}

void Runtime::watch_current_files() {
  const policy::Config& cfg = snap_->config;
  std::vector<std::string> files = {config_path_};
  for (const std::string* f : {&cfg.tls.cert, &cfg.tls.key, &cfg.tls.ca_bundle, &cfg.tls.crl}) {
    if (!f->empty()) files.push_back(*f);
  }
  watch_.set_files(std::move(files));
  watch_.set_dirs(cfg.manifests_dir.empty() ? std::vector<std::string>{} : std::vector<std::string>{cfg.manifests_dir});
}

void Runtime::poll_files() {
  std::string what;
  if (!watch_.poll(&what)) return;
  LogLine("info", "files changed").str("what", what);
  debouncer_.changed(static_cast<int64_t>(loop_.now_ms()));
  schedule_reload();
}

void Runtime::schedule_reload() {
  if (!reload_timer_) return;
  int64_t deadline = debouncer_.next_deadline();
  if (deadline < 0) return;
  int64_t now = static_cast<int64_t>(loop_.now_ms());
  reload_timer_->start(static_cast<uint64_t>(deadline > now ? deadline - now : 0));
}

void Runtime::on_reload_due(const char* trigger) {
  int64_t now = static_cast<int64_t>(loop_.now_ms());
  if (!debouncer_.due(now)) {
    schedule_reload();
    return;
  }
  // Re-stat right before loading: a file replaced while we read it shows up
  // as a change at the next poll and is loaded again.
  watch_.poll();
  bool ok = reload(trigger);
  debouncer_.attempted(static_cast<int64_t>(loop_.now_ms()), ok);
  if (ok) watch_current_files();  // the config may name other files now
  schedule_reload();
}

bool Runtime::reload(const char* trigger) {
  last_reload_at_ = utc_timestamp_now();
  SnapshotResult next = build_snapshot(config_path_);
  last_reload_ok_ = next.snapshot != nullptr;
  events_.metrics().count_reload(last_reload_ok_);
  if (!next.snapshot) {
    last_reload_error_ = next.problems.front();
    for (const auto& p : next.problems) LogLine("error", "reload failed").str("trigger", trigger).str("problem", p);
    if (audit_) audit_->event("reload", {{"trigger", trigger}, {"result", "failure"}, {"error", last_reload_error_}});
    return false;
  }
  last_reload_error_.clear();
  apply(std::move(next.snapshot));
  LogLine("info", "reloaded").str("trigger", trigger);
  if (expiry_warnings() != last_expiry_warnings_) log_expiry_warnings();
  if (audit_) audit_->event("reload", {{"trigger", trigger}, {"result", "success"}});
  return true;
}

void Runtime::apply(std::shared_ptr<const Snapshot> next) {
  const policy::Config& old_cfg = snap_->config;
  const policy::Config& new_cfg = next->config;
  if (new_cfg.ingress.listen.text != old_cfg.ingress.listen.text ||
      new_cfg.ingress.upstream.text != old_cfg.ingress.upstream.text ||
      (new_cfg.admin.listen ? new_cfg.admin.listen->text : "") !=
          (old_cfg.admin.listen ? old_cfg.admin.listen->text : "")) {
    LogLine("warn", "listener or upstream addresses changed: they apply after a restart");
  }
  if ((next->policy == nullptr) != (snap_->policy == nullptr)) {
    LogLine("warn", "switching between authenticate_only and policy mode applies after a restart");
  } else if (policy_ && next->policy) {
    audit_trust_changes(*snap_, *next);
    policy_->set_snapshot(next->policy);
  }
  if (next->server_tls) ingress_->set_tls(next->server_tls);
  if (egress_router_) {
    for (const auto& p : egress_router_->set_peers(next->policy.get(), next->client_tls)) {
      LogLine("warn", "egress peer unusable").str("problem", p);
    }
  }
  ingress_->set_node_manifest(next->node_manifest);
  snap_ = std::move(next);
}

void Runtime::audit_trust_changes(const Snapshot& before, const Snapshot& after) {
  auto old_peers = before.policy->peers();
  for (const auto& peer : after.policy->peers()) {
    for (const auto& old : old_peers) {
      if (old.slug == peer.slug && old.trust != peer.trust && peer.trust == "none") {
        LogLine("warn", "trust revoked").str("peer", peer.slug).str("previous_trust_level", old.trust);
        if (audit_) {
          audit_->event("trust_policy.revoked", {{"peer", peer.slug}, {"previous_trust_level", old.trust}});
        }
      }
    }
  }
}

}  // namespace fedproxy::app
