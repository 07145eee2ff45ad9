// One proxying listener, either direction: ingress accepts peer connections
// (TLS, or plain in insecure mode) and forwards to the local app; egress
// accepts the local app's connections and forwards to peers (its Authorizer,
// the EgressRouter, picks the peer's pool). Runs one ProxySession per
// connection, owns the default upstream pool and drains sessions on shutdown.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include "config/config.hpp"
#include "config/target.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/core/events.hpp"
#include "proxy/core/header_rules.hpp"
#include "proxy/core/upstream.hpp"
#include "proxy/http1/request_parser.hpp"
#include "proxy/net/listener.hpp"
#include "proxy/core/session_machine.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::core {

struct ProxyOptions {
  http1::ParserLimits parser_limits;
  uint32_t max_connections = 10000;
  uint32_t handshake_timeout_ms = 10000;
  uint32_t header_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint64_t max_conn_lifetime_ms = 0;  // 0 = off
  uint32_t max_requests_per_conn = 0;  // 0 = unlimited
  UpstreamOptions upstream;
  // Error codes for a failing upstream: the local app on ingress, a peer on
  // egress (SPEC §6: peer_unavailable).
  const char* unavailable_code = "upstream_unavailable";
  const char* unavailable_message = "The local application cannot be reached.";
  const char* timeout_message = "The local application did not answer in time.";
  const char* invalid_response_message = "The local application sent an invalid response.";
  Direction direction = Direction::ingress;
  uint32_t tunnel_idle_timeout_ms = 300000;  // an upgraded (WebSocket) connection
  // Ingress: requests come from peers, so the request-target is canonicalized
  // before anything reads it (SPEC §4, under http.path_policy), the header
  // section passes the hygiene rules and the app is told the peer's address
  // (SPEC §5). Off on egress, where the client is the local app and the
  // peer's fedproxy does all of this itself.
  bool peer_requests = true;
  config::HttpConfig http;  // path_policy, headers_with_underscores
};

class ProxySession;

// Connection counts of one listener kind across all worker loops: the
// max_connections limit is for the process, not per worker.
struct ConnectionCount {
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> accepted{0};
  // Takes a slot unless `limit` are in use (exact under concurrency).
  bool try_acquire(uint64_t limit) {
    uint64_t n = active.load(std::memory_order_relaxed);
    do {
      if (n >= limit) return false;
    } while (!active.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    accepted.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  void release() { active.fetch_sub(1, std::memory_order_relaxed); }
};

class ProxyServer {
 public:
  // tls may be null: plain HTTP ingress (insecure mode, SPEC §9).
  ProxyServer(net::Loop& loop, ProxyOptions options,
                std::shared_ptr<const tls::TlsContext> tls, Authorizer& authorizer,
                CoreEvents& events, std::shared_ptr<ConnectionCount> count = nullptr);
  ~ProxyServer();

  // reuse_port: see net::Listener (one listener per worker loop).
  // inherited_fd: see net::Listener (socket activation).
  bool listen(const config::Endpoint& endpoint, std::string* error, bool reuse_port = false,
              int inherited_fd = -1);
  const std::string& bound_address() const;

  // A reload: new handshakes use the new context, open sessions keep theirs.
  void set_tls(std::shared_ptr<const tls::TlsContext> tls) {
    tls_ = std::move(tls);
    ++tls_generation_;
  }
  const tls::TlsContext* current_tls() const { return tls_.get(); }
  uint64_t tls_generation() const { return tls_generation_; }
  void set_authorizer(Authorizer& authorizer) { authorizer_ = &authorizer; }
  // A reload: the http section applies from the next request on.
  // A reload: limits, timeouts and HTTP rules of `from` apply to new
  // connections, and to the next request and the next deadline of the open
  // ones (sessions read options() when they need a value). What `from`
  // cannot change at run time (direction, the upstream's endpoint) is not
  // taken.
  void set_run_time_options(const ProxyOptions& from);
  // The node's own manifest, served at /.well-known/fedproxy-manifest.json
  // to any peer whose certificate verifies (before policy: a peer fetching
  // it does not know us yet).
  void set_node_manifest(std::shared_ptr<const std::string> json) { node_manifest_ = std::move(json); }
  const std::shared_ptr<const std::string>& node_manifest() const { return node_manifest_; }
  // The node's trust bundle (SPIFFE format), served the same way at
  // /.well-known/fedproxy-bundle.json: peers refresh our anchors from it.
  void set_node_bundle(std::shared_ptr<const std::string> json) { node_bundle_ = std::move(json); }
  const std::shared_ptr<const std::string>& node_bundle() const { return node_bundle_; }

  // Stop accepting; idle connections close now, busy ones after their
  // current response.
  void begin_shutdown();
  // Close everything at once (grace period over).
  void close_all();
  // The deadlines of a session's phases, from the current options.
  PhaseTimeouts phase_timeouts() const;
  size_t active_sessions() const { return sessions_.size(); }  // on this loop
  // Across every worker sharing the ConnectionCount; safe from any thread.
  uint64_t total_active() const { return count_->active.load(std::memory_order_relaxed); }
  uint64_t total_accepted() const { return count_->accepted.load(std::memory_order_relaxed); }
  uint64_t accepted_here() const { return accepted_here_.load(std::memory_order_relaxed); }  // this loop
  uint64_t rejected_over_limit() const { return rejected_over_limit_; }

  // For sessions.
  net::Loop& loop() { return loop_; }
  const ProxyOptions& options() const { return options_; }
  UpstreamPool& pool() { return pool_; }
  size_t pool_idle_count() const { return pool_.idle_count(); }  // thread-safe
  Authorizer& authorizer() { return *authorizer_; }
  CoreEvents& events() { return events_; }
  bool shutting_down() const { return shutting_down_; }
  void session_gone(ProxySession* session);

 private:
  void on_accept(std::unique_ptr<net::Transport> transport);
  net::Loop& loop_;
  ProxyOptions options_;
  std::shared_ptr<const tls::TlsContext> tls_;
  uint64_t tls_generation_ = 0;
  std::shared_ptr<const std::string> node_manifest_;
  std::shared_ptr<const std::string> node_bundle_;
  Authorizer* authorizer_;
  CoreEvents& events_;
  UpstreamPool pool_;
  std::unique_ptr<net::Listener> listener_;
  std::string bound_;
  std::unordered_set<ProxySession*> sessions_;
  bool shutting_down_ = false;
  std::shared_ptr<ConnectionCount> count_;
  std::atomic<uint64_t> accepted_here_{0};
  uint64_t rejected_over_limit_ = 0;
};

}  // namespace fedproxy::core
