// `fedproxy run`: load and validate everything before any socket opens, then
// run the event loop until SIGTERM/SIGINT and a graceful drain.
#include <csignal>
#include <ctime>
#include <cstdio>
#include <memory>

#include "proxy/app/commands.hpp"
#include "proxy/app/event_log.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/readiness.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/core/admin_server.hpp"
#include "proxy/core/ingress_server.hpp"
#include "proxy/http1/serializer.hpp"
#include "proxy/net/loop.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

namespace {

int fatal(const std::string& file, const std::string& error) {
  LogLine line("fatal", file.empty() ? error : file + ": " + error);
  if (!file.empty()) line.str("file", file);
  line.str("error", error);
  return kExitFatal;
}

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

// Everything that lives for one `run`.
class Runtime final : public core::AdminHandler {
 public:
  Runtime(policy::Config config, TlsSnapshotResult tls) : config_(std::move(config)), tls_(std::move(tls)) {}

  int start() {
    ingress_ = std::make_unique<core::IngressServer>(loop_, ingress_options(config_), tls_.server,
                                                     authorizer_, events_);
    std::string error;
    if (!ingress_->listen(config_.ingress.listen, &error)) return fatal("", error);
    LogLine("info", "listening")
        .str("listener", "ingress")
        .str("address", ingress_->bound_address())
        .boolean("tls", tls_.server != nullptr);
    if (config_.admin.listen) {
      admin_ = std::make_unique<core::AdminServer>(loop_, *this);
      if (!admin_->listen(*config_.admin.listen, &error)) return fatal("", error);
      LogLine("info", "listening").str("listener", "admin").str("address", admin_->bound_address());
    }
    probe_ = std::make_unique<UpstreamProbe>(loop_, config_.ingress.upstream,
                                             config_.timeouts.upstream_connect_ms);
    sigterm_ = std::make_unique<net::SignalWatcher>(loop_, SIGTERM, [this] { shutdown("SIGTERM"); });
    sigint_ = std::make_unique<net::SignalWatcher>(loop_, SIGINT, [this] { shutdown("SIGINT"); });
    sighup_ = std::make_unique<net::SignalWatcher>(loop_, SIGHUP, [this] { reload("SIGHUP"); });
    if (!tls_.server) {
      insecure_timer_ = std::make_unique<net::Timer>(loop_, [] {
        LogLine("warn", "insecure mode: ingress is plain HTTP and peer identity is not verified");
      });
      insecure_timer_->start(60000, 60000);
    }
    LogLine("info", "started").str("node", config_.node.org).str("config", config_.path);
    loop_.run();
    LogLine("info", "stopped").num("requests", static_cast<int64_t>(events_.requests()));
    return 0;
  }

 private:
  void shutdown(const char* why) {
    if (stopping_) return;
    stopping_ = true;
    LogLine("info", "shutting down")
        .str("signal", why)
        .num("active_connections", static_cast<int64_t>(ingress_->active_sessions()))
        .num("grace_ms", config_.timeouts.shutdown_grace_ms);
    ingress_->begin_shutdown();
    if (admin_) admin_->close();
    probe_->stop();
    insecure_timer_.reset();
    // The loop ends when the last connection is gone; the grace timer only
    // forces that, it does not keep the loop alive by itself.
    grace_timer_ = std::make_unique<net::Timer>(loop_, [this] {
      LogLine("warn", "grace period over: closing remaining connections")
          .num("active_connections", static_cast<int64_t>(ingress_->active_sessions()));
      ingress_->close_all();
    });
    grace_timer_->start(config_.timeouts.shutdown_grace_ms);
    grace_timer_->unref();
    sigterm_.reset();
    sigint_.reset();
    sighup_.reset();
  }

  // Until certwatch (file polling, policy reload) lands, a reload rebuilds
  // the TLS snapshot from the same files. A failure keeps the old one.
  bool reload(const char* why) {
    last_reload_at_ = utc_timestamp_now();
    if (!tls_.server) {
      last_reload_ok_ = true;
      last_reload_error_.clear();
      return true;
    }
    auto next = build_tls_snapshot(config_);
    last_reload_ok_ = next.error.empty();
    events_.metrics().count_reload(last_reload_ok_);
    if (!last_reload_ok_) {
      last_reload_error_ = next.file + ": " + next.error;
      LogLine("error", "reload failed").str("trigger", why).str("file", next.file).str("error", next.error);
      return false;
    }
    last_reload_error_.clear();
    tls_ = std::move(next);
    ingress_->set_tls(tls_.server);
    LogLine("info", "reloaded").str("trigger", why);
    return true;
  }

  core::AdminResponse handle_admin(std::string_view method, std::string_view path) override {
    core::AdminResponse r;
    if (path == "/healthz") {
      r.body = "{\"status\":\"ok\"}\n";
    } else if (path == "/readyz") {
      bool ready = !stopping_ && probe_ && probe_->upstream_ok();
      r.status = ready ? 200 : 503;
      r.body = std::string("{\"ready\":") + (ready ? "true" : "false") + ",\"upstream\":" +
               (probe_ && probe_->upstream_ok() ? "true" : "false") + "}\n";
    } else if (path == "/status") {
      r.body = status_json();
    } else if (path == "/metrics") {
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = events_.metrics().render(ingress_->active_sessions(), ingress_->pool().idle_count(),
                                        tls_.server == nullptr);
    } else if (path == "/reload") {
      if (method != "POST") {
        r.status = 405;
        r.body = "{\"error\":\"method_not_allowed\",\"message\":\"Use POST /reload.\"}\n";
      } else {
        bool ok = reload("admin");
        r.status = ok ? 200 : 500;
        r.body = std::string("{\"ok\":") + (ok ? "true" : "false") + ",\"error\":\"" +
                 http1::json_escape(last_reload_error_) + "\"}\n";
      }
    } else {
      r.status = 404;
      r.body = "{\"error\":\"not_found\",\"message\":\"Admin endpoints: /healthz /readyz /status /metrics /reload.\"}\n";
    }
    return r;
  }

  std::string status_json() const {
    auto q = [](const std::string& s) { return "\"" + http1::json_escape(s) + "\""; };
    std::string j = "{\"node\":{\"org\":" + q(config_.node.org) + ",\"entity_uri\":" + q(config_.node.entity_uri) + "}";
    j += std::string(",\"insecure\":") + (tls_.server ? "false" : "true");
    if (tls_.server) {
      const auto& bundle = tls_.server->bundle();
      tls::PeerIdentity id = tls::identity_from_cert(*bundle.cert_chain());
      int64_t now = static_cast<int64_t>(std::time(nullptr));
      j += ",\"certificate\":{\"subject\":" + q(id.subject) + ",\"uri_sans\":[";
      for (size_t i = 0; i < id.uri_sans.size(); ++i) j += (i ? "," : "") + q(id.uri_sans[i]);
      j += "],\"fingerprint_sha256\":" + q(id.der_sha256) + ",\"not_after\":" + std::to_string(id.not_after) +
           ",\"days_left\":" + std::to_string((id.not_after - now) / 86400) + "}";
      j += ",\"ca_count\":" + std::to_string(bundle.ca_count());
      if (bundle.crl()) {
        int64_t next = bundle.crl_next_update().value_or(0);
        j += ",\"crl\":{\"configured\":true,\"next_update\":" + std::to_string(next) +
             ",\"state\":" + q(next && next < now ? "expired" : "current") + "}";
      } else {
        j += ",\"crl\":{\"configured\":false}";
      }
    }
    j += ",\"last_reload\":";
    if (last_reload_at_.empty()) {
      j += "null";
    } else {
      j += std::string("{\"ok\":") + (last_reload_ok_ ? "true" : "false") + ",\"at\":" + q(last_reload_at_) +
           ",\"error\":" + (last_reload_error_.empty() ? "null" : q(last_reload_error_)) + "}";
    }
    j += ",\"peers\":[],\"grants\":0";
    j += ",\"connections\":{\"active\":" + std::to_string(ingress_->active_sessions()) +
         ",\"accepted\":" + std::to_string(ingress_->accepted()) + "}";
    j += ",\"upstream\":{\"address\":" + q(config_.ingress.upstream.text) + ",\"reachable\":" +
         (probe_ && probe_->upstream_ok() ? "true" : "false") + "}";
    j += "}\n";
    return j;
  }

  policy::Config config_;
  TlsSnapshotResult tls_;
  net::Loop loop_;
  EventLog events_;
  core::PassThroughAuthorizer authorizer_;
  std::unique_ptr<core::IngressServer> ingress_;
  std::unique_ptr<core::AdminServer> admin_;
  std::unique_ptr<UpstreamProbe> probe_;
  std::string last_reload_at_;
  std::string last_reload_error_;
  bool last_reload_ok_ = true;
  std::unique_ptr<net::SignalWatcher> sigterm_, sigint_, sighup_;
  std::unique_ptr<net::Timer> grace_timer_, insecure_timer_;
  bool stopping_ = false;
};

}  // namespace

int cmd_run(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts(
        "Usage: fedproxy run --config FILE\n"
        "Runs the proxy. Exit 0 after SIGTERM/SIGINT and a drain of in-flight requests\n"
        "(timeouts.shutdown_grace_ms); exit 2 when the config, a certificate, the key,\n"
        "the CA bundle or the CRL cannot be loaded. SIGHUP reloads certificates.");
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up must not kill us
  std::string error;
  std::string path = config_path_from_args(args, &error);
  if (path.empty()) return fatal("", error);
  auto loaded = policy::load_config_file(path, policy::EnvOverrides::from_environment());
  if (!loaded.config) {
    std::string all;
    for (const auto& p : loaded.problems) all += (all.empty() ? "" : "; ") + p.to_string();
    return fatal(path, all);
  }
  policy::Config config = std::move(*loaded.config);
  if (!tls::init_crypto()) return fatal("", "psa_crypto_init failed");

  TlsSnapshotResult tls;
  if (config.tls.cert.empty()) {
    if (!env_flag("FEDPROXY_INSECURE")) {
      return fatal(path, "tls.cert and tls.key are not set; refusing to run without TLS unless FEDPROXY_INSECURE=1");
    }
    if (!config.ingress.listen.is_loopback() && !env_flag("FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK")) {
      return fatal(path, "insecure mode on non-loopback address " + config.ingress.listen.text +
                             " needs FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK=1");
    }
    LogLine("warn", "insecure mode: ingress is plain HTTP and peer identity is not verified");
  } else {
    tls = build_tls_snapshot(config);
    if (!tls.error.empty()) return fatal(tls.file, tls.error);
  }
  Runtime runtime(std::move(config), std::move(tls));
  return runtime.start();
}

}  // namespace fedproxy::app
