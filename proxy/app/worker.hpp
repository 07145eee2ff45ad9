// One worker: the data path of one event loop. It owns the ingress listener
// (and the egress one when configured), their sessions, upstream pools and
// the per-loop policy authorizer, and applies a new snapshot when told.
// Worker 0 runs on the main loop next to the control plane (signals, admin,
// certwatch, heartbeats); workers 1..N-1 each run on a WorkerThread. Every
// method runs on the worker's own loop thread, except the thread-safe
// counters (metrics, connection counts, idle pool sizes).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "policy/policy.hpp"
#include "proxy/app/event_log.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/core/audit_gate.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/egress_router.hpp"
#include "proxy/core/proxy_server.hpp"
#include "proxy/core/policy_authorizer.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::app {

class AuditSink;

// Shared by every worker of the process.
struct WorkerShared {
  std::shared_ptr<policy::RateLimiter> limiter;  // rebound by the Runtime only
  std::shared_ptr<core::ConnectionCount> ingress_count = std::make_shared<core::ConnectionCount>();
  std::shared_ptr<core::ConnectionCount> egress_count = std::make_shared<core::ConnectionCount>();
  AuditSink* audit = nullptr;  // its refusing() flag gates every listener's requests
};

// Where a worker listens. Worker 0 binds the configured addresses; the
// others bind the addresses worker 0 actually got (port 0 resolved), with
// SO_REUSEPORT when there is more than one worker.
struct ListenPlan {
  config::Endpoint ingress;
  std::optional<config::Endpoint> egress;  // none: no egress listener on this worker
  bool reuse_port = false;
  // Sockets inherited from systemd (socket activation), -1 = bind. The
  // worker's listener owns them.
  int ingress_fd = -1;
  int egress_fd = -1;
};

class Worker {
 public:
  // events outlives the worker (its counters are read after the thread ends).
  Worker(net::Loop& loop, unsigned index, WorkerShared shared, EventLog& events);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Builds the servers for `snap` and binds the plan's listeners. On failure
  // *failed_listener (optional) says which: "ingress" or "egress".
  bool start(const std::shared_ptr<const Snapshot>& snap, const ListenPlan& plan, std::string* error,
             std::string* failed_listener = nullptr);
  // A reload. Returns the egress peers that cannot be used (to be logged once).
  std::vector<std::string> apply(const std::shared_ptr<const Snapshot>& next);
  // Stop accepting, drain; after grace_ms close what is left.
  void begin_shutdown(uint32_t grace_ms);
  void close_all();

  unsigned index() const { return index_; }
  core::ProxyServer& ingress() { return *ingress_; }
  const core::ProxyServer& ingress() const { return *ingress_; }
  core::ProxyServer* egress() { return egress_.get(); }
  core::EgressRouter* egress_router() { return egress_router_.get(); }
  size_t upstream_idle() const;  // thread-safe
  // Connections this worker accepted on its listeners (ingress and egress). Thread-safe.
  uint64_t accepted() const {
    return (ingress_ ? ingress_->accepted_here() : 0) + (egress_ ? egress_->accepted_here() : 0);
  }

 private:
  net::Loop& loop_;
  unsigned index_;
  WorkerShared shared_;
  EventLog& events_;
  core::PassThroughAuthorizer pass_through_;
  std::unique_ptr<core::PolicyAuthorizer> policy_;
  // audit.on_failure "reject": in front of the ingress and egress authorizers.
  std::unique_ptr<core::AuditGate> ingress_gate_, egress_gate_;
  std::unique_ptr<core::ProxyServer> ingress_;
  std::unique_ptr<core::EgressRouter> egress_router_;
  std::unique_ptr<core::ProxyServer> egress_;  // the same session code, routed to peers
  std::unique_ptr<net::Timer> grace_timer_;
};

// Options shared by the ingress and egress servers, from the config.
core::ProxyOptions ingress_options(const config::Config& cfg);
// The same for the egress listener (the local app is the client, peers are upstream).
core::ProxyOptions egress_options(const config::Config& cfg);

}  // namespace fedproxy::app
