// One `fedproxy run`: owns the main loop, the current snapshot and
// everything that reacts to signals and admin requests (the control plane),
// worker 0 on the main loop and workers 1..N-1 on their own threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "certwatch/file_watch.hpp"
#include "proxy/app/audit_sink.hpp"
#include "proxy/app/crl_store.hpp"
#include "proxy/app/peer_bundles.hpp"
#include "proxy/app/event_log.hpp"
#include "proxy/app/join_service.hpp"
#include "proxy/app/management_api.hpp"
#include "proxy/app/readiness.hpp"
#include "proxy/app/reload_outcome.hpp"
#include "proxy/app/sd_notify.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/app/socket_activation.hpp"
#include "proxy/app/worker.hpp"
#include "proxy/app/worker_thread.hpp"
#include "proxy/core/admin_server.hpp"
#include "proxy/core/document_refresher.hpp"
#include "proxy/core/lease_manager.hpp"
#include "proxy/core/peer_liveness.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::app {

// One "config warning" log line each (SnapshotResult::warnings), at start
// and after a reload.
void log_config_warnings(const std::vector<std::string>& warnings);

class Runtime final : public core::AdminHandler {
 public:
  // inherited: sockets from systemd socket activation (may be empty).
  Runtime(std::string config_path, std::shared_ptr<const Snapshot> snapshot, InheritedSockets inherited = {});
  ~Runtime() override;
  int run();  // returns the exit code

  const core::AdminAccess& admin_access() const override { return snap_->admin; }
  core::AdminResponse handle_admin(const core::AdminRequest& request) override;
  void admin_refused(const core::AdminRequest& request, const core::AdminVerdict& verdict) override;

 private:
  bool start_listeners();
  void shutdown(const char* why);
  void start_shared_limits(const config::Config& cfg);
  // actor: who asked (the admin token's name), "" for signals and file changes.
  bool reload(const char* trigger, std::string_view actor = {});
  // certwatch: poll the files, debounce bursts, retry inconsistent states.
  void watch_current_files();
  void poll_files();
  void schedule_reload();
  void on_reload_due(const char* trigger, std::string_view actor = {});
  void apply(std::shared_ptr<const Snapshot> next);
  static base::Result<std::shared_ptr<const tls::TlsContext>> peering_tls(const tls::TlsContext& server);
  void audit_trust_changes(const Snapshot& before, const Snapshot& after);
  // runtime_refresh.cpp: documents fetched again and again (tls.crl_urls,
  // peers' trust bundles); a new one in use is swapped in by a reload.
  void start_refreshers();
  void refreshers_follow_config();  // after a reload: the URLs and peers of the new config
  std::optional<core::DocumentRefresher::Target> crl_target(const std::string& url, std::string* why);
  void on_crl_fetched(const std::string& url, core::FetchResult&& result);
  void on_bundle_fetched(const std::string& peer, core::FetchResult&& result);
  std::string crl_status_json(int64_t now) const;
  std::string status_json() const;
  std::string metrics_text() const;
  void merge_metrics(Metrics& total) const;  // every worker's counters summed into `total`
  uint64_t total_requests() const;
  // "node certificate expires in N days", "peer X expires in N days" (< 30 days).
  std::vector<std::string> expiry_warnings() const;
  void log_expiry_warnings();  // at start, daily, and on reload when they changed
  std::vector<std::string> last_expiry_warnings_;

  std::string config_path_;
  std::shared_ptr<const Snapshot> snap_;
  net::Loop loop_;
  EventLog events_;  // worker 0's, also counts reloads
  std::unique_ptr<AuditSink> audit_;
  WorkerShared shared_;
  std::unique_ptr<Worker> worker0_;
  SnapshotCell cell_;  // what workers 1..N-1 apply
  std::vector<std::unique_ptr<WorkerThread>> threads_;
  std::unique_ptr<core::LeaseManager> leases_;    // rate_limits.backend redis (SPEC §14)
  std::unique_ptr<core::PeerLiveness> liveness_;  // heartbeats through worker 0's egress
  std::unique_ptr<core::DocumentRefresher> crl_refresher_;     // null in insecure mode
  std::map<std::string, std::unique_ptr<core::UpstreamPool>> crl_pools_;  // per tls.crl_urls entry
  CrlStore crls_;
  std::unique_ptr<core::DocumentRefresher> bundle_refresher_;  // null without egress
  PeerBundles bundles_;
  std::unique_ptr<core::AdminServer> admin_;
  std::unique_ptr<ManagementApi> management_;  // /v1/peers, /v1/grants
  std::unique_ptr<JoinService> join_;          // /v1/invites, /v1/joins, the peering listener
  std::unique_ptr<core::AdminServer> peering_; // peering.listen (SPEC §13)
  std::unique_ptr<UpstreamProbe> probe_;
  std::unique_ptr<net::SignalWatcher> sigterm_, sigint_, sighup_, sigusr1_;
  std::unique_ptr<net::Timer> insecure_timer_;
  certwatch::WatchSet watch_;
  certwatch::ReloadDebouncer debouncer_;
  std::unique_ptr<net::Timer> poll_timer_, reload_timer_, expiry_timer_, audit_retry_timer_;
  std::string last_reload_at_;
  std::string last_reload_error_;
  bool last_reload_ok_ = true;  // the last reload's snapshot applied (ok or restart_required)
  // What the listeners, workers and start-time objects were built from: a
  // reload's restart_required keys are judged against it (reload_outcome.hpp).
  config::Config started_config_;
  ReloadStats reload_stats_;
  SdNotifier notify_;
  InheritedSockets inherited_;  // until start_listeners() takes them
  std::string listening_;  // "ingress ADDR, egress ADDR, admin ADDR" for STATUS=
  bool stopping_ = false;
};

}  // namespace fedproxy::app
