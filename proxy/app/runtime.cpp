#include "proxy/app/runtime.hpp"

#include <fcntl.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <string>
#include <vector>

#include "proxy/app/log.hpp"

namespace fedproxy::app {

namespace {

// The same endpoint on the port the first listener actually got (when the
// config says port 0), so that every worker binds one address.
config::Endpoint with_bound_port(config::Endpoint e, const std::string& bound) {
  if (e.kind != config::Endpoint::Kind::tcp) return e;
  auto colon = bound.rfind(':');
  if (colon != std::string::npos) e.port = static_cast<uint16_t>(std::stoul(bound.substr(colon + 1)));
  return e;
}

constexpr uint64_t kAuditRetryMs = 1000;

int fatal(const std::string& message) {
  LogLine("fatal", message);
  return 2;
}

}  // namespace

Runtime::Runtime(std::string config_path, std::shared_ptr<const Snapshot> snapshot, InheritedSockets inherited)
    : config_path_(std::move(config_path)), snap_(std::move(snapshot)), inherited_(std::move(inherited)) {
  ManagementApi::Hooks hooks;
  hooks.current = [this] { return snap_; };
  hooks.apply = [this](std::shared_ptr<const Snapshot> next) {
    apply(std::move(next));
    watch_current_files();  // a peer's ca_bundle may be new
    watch_.poll();
    refreshers_follow_config();  // a peer may now refresh its bundle
  };
  hooks.fetched_crls = [this] { return crls_.crls(); };
  hooks.audit = [this](std::string_view name, const policy::AuditFields& fields) {
    if (audit_) audit_->event(name, fields);
  };
  join_ = std::make_unique<JoinService>(loop_, config_path_, hooks);
  management_ = std::make_unique<ManagementApi>(config_path_, std::move(hooks));
}

Runtime::~Runtime() {
  // A start that failed half-way leaves running threads: stop them at once.
  for (auto& t : threads_) t->request_stop(0);
  for (auto& t : threads_) t->join();
}

int Runtime::run() {
  // Valid until the first reload only: nothing below keeps it across loop_.run().
  const config::Config& cfg = snap_->config;
  started_config_ = cfg;
  reload_stats_.last_success_unix = static_cast<int64_t>(std::time(nullptr));
  if (!cfg.audit.path.empty()) {
    std::string error;
    audit_ = AuditSink::open(cfg.audit.path, cfg.audit.on_failure, &error);
    if (!audit_) return fatal(error);
    events_.set_audit(audit_.get());
  }
  shared_.audit = audit_.get();
  events_.set_log_requests(cfg.log_requests);
  shared_.limiter = std::make_shared<policy::RateLimiter>();
  shared_.limiter->set_replicas(cfg.rate_limits.replicas);
  events_.set_limiter(shared_.limiter.get());
  start_shared_limits(cfg);
  if (snap_->policy) {
    shared_.limiter->rebind(*snap_->policy);
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
  start_refreshers();
  log_expiry_warnings();
  expiry_timer_ = std::make_unique<net::Timer>(loop_, [this] { log_expiry_warnings(); });
  expiry_timer_->start(86400000, 86400000);
  expiry_timer_->unref();
  if (audit_) {
    // While the audit log cannot be written, try again every second even
    // without traffic (under "reject" a refusing proxy gets none: /readyz 503).
    audit_retry_timer_ = std::make_unique<net::Timer>(loop_, [this] { audit_->retry(); });
    audit_retry_timer_->start(kAuditRetryMs, kAuditRetryMs);
    audit_retry_timer_->unref();
  }
  if (audit_) audit_->event("start", {{"node", cfg.node.org}, {"config", config_path_}});
  LogLine("info", "started").str("node", cfg.node.org).str("config", config_path_);
  notify_.ready("serving: " + listening_);
  begin_log_batching();
  loop_.add_iteration_hook(flush_log_batch);
  loop_.run();
  end_log_batching();
  // Not `cfg`: a reload during the run replaced (and freed) that snapshot.
  // Workers 1..N-1 drain on their own loops, bounded by the same grace period.
  for (auto& t : threads_) t->join();
  if (audit_) {
    audit_->event("stop", {{"node", snap_->config.node.org}, {"requests", std::to_string(total_requests())}});
  }
  LogLine stopped("info", "stopped");
  stopped.num("requests", static_cast<int64_t>(total_requests()));
  if (audit_) stopped.str("audit_chain_head", audit_->chain_head());
  return 0;
}

bool Runtime::start_listeners() {
  const config::Config& cfg = snap_->config;
  const unsigned workers = std::max(1u, cfg.workers);
  std::string error;
  // One fatal line naming the listener, its address and the reason; no
  // READY=1, and no "listening" line was written before (see below).
  auto cannot_listen = [&](std::string_view listener, const config::Endpoint& at) {
    LogLine("fatal", error).str("listener", listener).str("address", at.text);
    notify_.status(error);
    return false;
  };
  // Sockets systemd bound for us (socket activation), matched to listeners.
  ListenPlan plan;
  plan.ingress = cfg.ingress.listen;
  plan.egress = cfg.egress.listen;
  plan.reuse_port = workers > 1;
  plan.ingress_fd = inherited_.take("ingress", cfg.ingress.listen, &error);
  if (!error.empty()) return cannot_listen("ingress", cfg.ingress.listen);
  if (cfg.egress.listen) {
    plan.egress_fd = inherited_.take("egress", *cfg.egress.listen, &error);
    if (!error.empty()) return cannot_listen("egress", *cfg.egress.listen);
  }
  int admin_fd = -1;
  if (cfg.admin.listen) {
    admin_fd = inherited_.take("admin", *cfg.admin.listen, &error);
    if (!error.empty()) return cannot_listen("admin", *cfg.admin.listen);
  }
  for (const auto& unused : inherited_.close_unused()) {
    LogLine("warn", "inherited socket matches no listener: closed").str("socket", unused);
  }
  worker0_ = std::make_unique<Worker>(loop_, 0, shared_, events_);
  std::string failed;
  if (!worker0_->start(snap_, plan, &error, &failed)) {
    return cannot_listen(failed, failed == "egress" ? *cfg.egress.listen : cfg.ingress.listen);
  }
  if (worker0_->egress()) {
    for (const auto& p : worker0_->egress_router()->set_peers(snap_->policy.get(), snap_->client_tls)) {
      LogLine("warn", "egress peer unusable").str("problem", p);
    }
  }
  // Workers 1..N-1 bind the addresses worker 0 got (listeners are TCP only),
  // or listen on their own duplicate of an inherited socket (one listening
  // socket polled by several loops: the kernel hands each connection to one).
  if (workers > 1) {
    cell_.publish(snap_);
    ListenPlan more;
    more.reuse_port = true;
    more.ingress = with_bound_port(cfg.ingress.listen, worker0_->ingress().bound_address());
    if (worker0_->egress()) {
      more.egress = with_bound_port(*cfg.egress.listen, worker0_->egress()->bound_address());
    }
    for (unsigned i = 1; i < workers; ++i) {
      ListenPlan mine = more;
      if (plan.ingress_fd >= 0) mine.ingress_fd = ::fcntl(plan.ingress_fd, F_DUPFD_CLOEXEC, 3);
      if (plan.egress_fd >= 0) mine.egress_fd = ::fcntl(plan.egress_fd, F_DUPFD_CLOEXEC, 3);
      auto t = std::make_unique<WorkerThread>(i, shared_, cell_, mine);
      t->set_log_requests(cfg.log_requests);
      if (!t->start(&error)) return cannot_listen("ingress", more.ingress);
      threads_.push_back(std::move(t));
    }
  }
  if (worker0_->egress()) {
    liveness_ = std::make_unique<core::PeerLiveness>(
        loop_, *worker0_->egress_router(), cfg.egress.heartbeat_interval_ms,
        [this](const std::string& peer, core::PeerState from, core::PeerState to, const std::string& detail) {
          LogLine(to == core::PeerState::degraded ? "warn" : "info", "peer state changed")
              .str("peer_org", peer)
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
    if (!admin_->listen(*cfg.admin.listen, &error, admin_fd)) return cannot_listen("admin", *cfg.admin.listen);
  }
  if (cfg.peering_listen) {
    if (!snap_->server_tls) {
      error = "peering.listen needs TLS (it is off in insecure mode)";
      return cannot_listen("peering", *cfg.peering_listen);
    }
    auto ctx = peering_tls(*snap_->server_tls);
    if (!ctx) {
      error = ctx.message();
      return cannot_listen("peering", *cfg.peering_listen);
    }
    core::AdminServerOptions peering;
    peering.tls = std::move(ctx).value();
    peering.gated = false;
    peering.max_body_bytes = kMaxJoinBodyBytes;
    peering_ = std::make_unique<core::AdminServer>(loop_, join_->peering_handler(), std::move(peering));
    if (!peering_->listen(*cfg.peering_listen, &error)) return cannot_listen("peering", *cfg.peering_listen);
  }
  // Every listener is bound: only now say so, so that a start that fails on
  // the last one never claimed the first.
  LogLine("info", "listening")
      .str("listener", "ingress")
      .str("address", worker0_->ingress().bound_address())
      .boolean("tls", snap_->server_tls != nullptr)
      .boolean("inherited", plan.ingress_fd >= 0);
  listening_ = "ingress " + worker0_->ingress().bound_address();
  if (worker0_->egress()) {
    LogLine("info", "listening")
        .str("listener", "egress")
        .str("address", worker0_->egress()->bound_address())
        .boolean("inherited", plan.egress_fd >= 0);
    listening_ += ", egress " + worker0_->egress()->bound_address();
  }
  if (workers > 1) LogLine("info", "workers started").num("workers", workers);
  if (admin_) {
    LogLine("info", "listening")
        .str("listener", "admin")
        .str("address", admin_->bound_address())
        .boolean("inherited", admin_fd >= 0);
    listening_ += ", admin " + admin_->bound_address();
  }
  if (peering_) {
    LogLine("info", "listening").str("listener", "peering").str("address", peering_->bound_address());
    listening_ += ", peering " + peering_->bound_address();
  }
  probe_ = std::make_unique<UpstreamProbe>(loop_, cfg.ingress.upstream, cfg.timeouts.upstream_connect_ms);
  return true;
}

void Runtime::shutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  const uint32_t grace_ms = snap_->config.timeouts.shutdown_grace_ms;
  notify_.stopping(std::string("stopping on ") + why + ": draining up to " + std::to_string(grace_ms) + " ms");
  LogLine("info", "shutting down")
      .str("signal", why)
      .num("active_connections", static_cast<int64_t>(shared_.ingress_count->active.load()))
      .num("grace_ms", grace_ms);
  if (liveness_) liveness_->stop();
  if (leases_) {
    // Draining requests are limited by this replica's share from now on.
    leases_.reset();
    shared_.limiter->set_mode(policy::LimitMode::fallback);
  }
  if (crl_refresher_) crl_refresher_->stop();
  if (bundle_refresher_) bundle_refresher_->stop();
  worker0_->begin_shutdown(grace_ms);
  for (auto& t : threads_) t->request_stop(grace_ms);
  if (admin_) admin_->close();
  if (peering_) peering_->close();
  probe_->stop();
  insecure_timer_.reset();
  sigterm_.reset();
  sigint_.reset();
  sighup_.reset();
  sigusr1_.reset();
  poll_timer_.reset();
  reload_timer_.reset();
  expiry_timer_.reset();
  audit_retry_timer_.reset();
}

void Runtime::start_shared_limits(const config::Config& cfg) {
  if (cfg.rate_limits.backend != config::RateLimitsConfig::Backend::redis || !cfg.rate_limits.redis) return;
  // Replicas of one node share its keys; each counts under its own id
  // (host, process, start) in the quota hashes.
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const std::string replica = std::string(host) + ":" + std::to_string(getpid()) + ":" +
                              std::to_string(net::Loop::unix_ms());
  const std::string display = cfg.rate_limits.redis->display();
  leases_ = std::make_unique<core::LeaseManager>(
      loop_, shared_.limiter, cfg.rate_limits, "fedproxy:" + cfg.node.entity_uri + ":", replica,
      [display, reject = cfg.rate_limits.on_backend_failure == config::RateLimitsConfig::OnFailure::reject](
          bool up, const std::string& error) {
        if (up) {
          LogLine("info", "rate_limits.backend_up").str("redis", display).str("state", "shared");
        } else {
          LogLine("warn", "rate_limits.backend_down")
              .str("redis", display)
              .str("state", reject ? "reject" : "fallback")
              .str("error", error);
        }
      });
  leases_->start();
}

void log_config_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) LogLine("warn", "config warning").str("warning", w);
}

uint64_t Runtime::total_requests() const {
  uint64_t n = events_.requests();
  for (const auto& t : threads_) n += t->events().requests();
  return n;
}

void Runtime::log_expiry_warnings() {
  last_expiry_warnings_ = expiry_warnings();
  for (const auto& w : last_expiry_warnings_) LogLine("warn", "expiry").str("warning", w);
}

void Runtime::watch_current_files() {
  const config::Config& cfg = snap_->config;
  std::vector<std::string> files = {config_path_};
  for (const std::string* f : {&cfg.tls.cert, &cfg.tls.key, &cfg.tls.ca_bundle, &cfg.tls.crl, &cfg.node.ca_bundle}) {
    if (!f->empty()) files.push_back(*f);
  }
  for (const auto& t : cfg.admin.tokens) files.push_back(t.path);  // a rotated token applies without restart
  for (const config::PeerConfig& peer : cfg.peers) {
    if (!peer.ca_bundle.empty()) files.push_back(peer.ca_bundle);  // its own trust anchors
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

void Runtime::on_reload_due(const char* trigger, std::string_view actor) {
  int64_t now = static_cast<int64_t>(loop_.now_ms());
  if (!debouncer_.due(now)) {
    schedule_reload();
    return;
  }
  // Re-stat right before loading: a file replaced while we read it shows up
  // as a change at the next poll and is loaded again.
  watch_.poll();
  bool ok = reload(trigger, actor);
  debouncer_.attempted(static_cast<int64_t>(loop_.now_ms()), ok);
  if (ok) watch_current_files();  // the config may name other files now
  schedule_reload();
}

bool Runtime::reload(const char* trigger, std::string_view actor) {
  notify_.reloading(std::string("reloading (") + trigger + ")");
  last_reload_at_ = utc_timestamp_now();
  const int64_t now_unix = static_cast<int64_t>(std::time(nullptr));
  const std::map<std::string, std::string> fetched = crls_.crls();
  SnapshotResult next = build_snapshot(config_path_, false, {.fetched_crls = &fetched});
  last_reload_ok_ = next.snapshot != nullptr;
  // Audit fields: the trigger, and for an admin request the token's name.
  policy::AuditFields fields = {{"trigger", trigger}};
  if (!actor.empty()) fields.push_back({"actor", std::string(actor)});
  if (!next.snapshot) {
    reload_stats_.record(ReloadResult::failed, now_unix, {});
    last_reload_error_ = next.problems.front();
    for (const auto& p : next.problems) LogLine("error", "reload failed").str("trigger", trigger).str("problem", p);
    fields.push_back({"result", "failure"});
    fields.push_back({"error", last_reload_error_});
    if (audit_) audit_->event("reload", fields);
    // READY=1 again: the previous snapshot still serves.
    notify_.ready("reload failed at " + last_reload_at_ + ", serving the previous configuration: " +
                  last_reload_error_ + "; " + listening_);
    return false;
  }
  last_reload_error_.clear();
  std::vector<std::string> restart_keys = restart_required_keys(started_config_, next.snapshot->config);
  std::string keys;
  for (const auto& k : restart_keys) keys += (keys.empty() ? "" : ",") + k;
  const ReloadResult result = restart_keys.empty() ? ReloadResult::ok : ReloadResult::restart_required;
  reload_stats_.record(result, now_unix, std::move(restart_keys));
  const uint32_t old_interval = snap_->config.tls.watch_interval_ms;
  apply(std::move(next.snapshot));
  refreshers_follow_config();
  const uint32_t interval = snap_->config.tls.watch_interval_ms;
  if (poll_timer_ && interval != old_interval) poll_timer_->start(interval, interval);
  LogLine done(keys.empty() ? "info" : "warn", "reloaded");
  done.str("trigger", trigger).str("result", to_string(result));
  if (!keys.empty()) done.str("restart_required", keys);
  log_config_warnings(next.warnings);
  if (expiry_warnings() != last_expiry_warnings_) log_expiry_warnings();
  fields.push_back({"result", keys.empty() ? "success" : "restart_required"});
  if (!keys.empty()) fields.push_back({"restart_required", keys});
  if (audit_) audit_->event("reload", fields);
  notify_.ready((keys.empty() ? "reloaded at " + last_reload_at_
                              : "reloaded at " + last_reload_at_ + ", restart required for " + keys) +
                "; " + listening_);
  return true;
}

// The peering listener's TLS: the node certificate of `server`, and
// server-authenticated only (the joiner has no certificate we trust yet).
base::Result<std::shared_ptr<const tls::TlsContext>> Runtime::peering_tls(const tls::TlsContext& server) {
  tls::TlsOptions options;
  options.session_tickets = false;
  options.request_client_cert = false;
  return tls::TlsContext::create(tls::Role::server, server.shared_bundle(), options);
}

void Runtime::apply(std::shared_ptr<const Snapshot> next) {
  if (peering_ && next->server_tls && next->server_tls != snap_->server_tls) {
    // A renewed node certificate serves joins too, from the next connection.
    if (auto ctx = peering_tls(*next->server_tls)) {
      peering_->set_tls(std::move(ctx).value());
    } else {
      LogLine("error", "peering listener keeps its certificate").str("error", ctx.message());
    }
  }
  // Settings read only at start (listeners, workers, upstream, the switch
  // between authenticate_only and policy mode, ...) are named by reload()'s
  // restart_required result, not applied here.
  const config::Config& new_cfg = next->config;
  if (next->policy && snap_->policy) {
    audit_trust_changes(*snap_, *next);
    // Once, before any worker sees the snapshot (see PolicyAuthorizer).
    shared_.limiter->rebind(*next->policy);
  }
  for (const auto& p : worker0_->apply(next)) LogLine("warn", "egress peer unusable").str("problem", p);
  events_.set_log_requests(new_cfg.log_requests);
  if (leases_) leases_->configure(new_cfg.rate_limits);
  shared_.limiter->set_replicas(new_cfg.rate_limits.replicas);
  if (audit_) audit_->set_on_failure(new_cfg.audit.on_failure);
  for (auto& t : threads_) t->set_log_requests(new_cfg.log_requests);
  cell_.publish(next);
  for (auto& t : threads_) t->notify();
  snap_ = std::move(next);
}

void Runtime::audit_trust_changes(const Snapshot& before, const Snapshot& after) {
  auto old_peers = before.policy->peers();
  for (const auto& peer : after.policy->peers()) {
    for (const auto& old : old_peers) {
      if (old.slug == peer.slug && old.trust != peer.trust && peer.trust == "none") {
        LogLine("warn", "trust revoked").str("peer_org", peer.slug).str("previous_trust_level", old.trust);
        if (audit_) {
          audit_->event("trust_policy.revoked", {{"peer", peer.slug}, {"previous_trust_level", old.trust}});
        }
      }
    }
  }
}

}  // namespace fedproxy::app
