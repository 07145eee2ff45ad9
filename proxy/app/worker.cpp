#include "proxy/app/worker.hpp"

#include "proxy/app/audit_sink.hpp"
#include "proxy/app/log.hpp"
#include "proxy/net/resolver.hpp"

namespace fedproxy::app {

core::ProxyOptions ingress_options(const config::Config& cfg) {
  core::ProxyOptions o;
  o.parser_limits.max_request_line = cfg.limits.max_request_line_bytes;
  o.parser_limits.max_header_bytes = cfg.limits.max_header_bytes;
  o.parser_limits.max_header_count = cfg.limits.max_header_count;
  o.parser_limits.chunk_extensions.per_chunk = cfg.limits.max_chunk_extension_bytes;
  o.parser_limits.chunk_extensions.per_message = cfg.limits.max_chunk_extension_bytes_per_message;
  o.max_connections = cfg.limits.max_connections;
  o.handshake_timeout_ms = cfg.timeouts.handshake_ms;
  o.header_timeout_ms = cfg.timeouts.header_ms;
  o.idle_timeout_ms = cfg.timeouts.idle_ms;
  o.max_conn_lifetime_ms = cfg.limits.max_conn_lifetime_ms;
  o.max_requests_per_conn = cfg.limits.max_requests_per_conn;
  o.upstream.endpoint = cfg.ingress.upstream;
  o.upstream.connect_timeout_ms = cfg.timeouts.upstream_connect_ms;
  o.upstream.response_timeout_ms = cfg.timeouts.upstream_response_ms;
  o.tunnel_idle_timeout_ms = cfg.timeouts.tunnel_idle_ms;
  o.upstream.idle_timeout_ms = cfg.timeouts.idle_ms;
  o.upstream.max_idle = cfg.ingress.upstream_pool_max_idle;
  o.http = cfg.http;
  return o;
}

core::ProxyOptions egress_options(const config::Config& cfg) {
  core::ProxyOptions opts = ingress_options(cfg);
  opts.direction = core::Direction::egress;
  opts.peer_requests = false;  // the client is the local app; the peer's fedproxy canonicalizes
  opts.unavailable_code = "peer_unavailable";
  opts.unavailable_message = "The peer cannot be reached.";
  opts.timeout_message = "The peer did not answer in time.";
  opts.invalid_response_message = "The peer sent an invalid response.";
  return opts;
}

Worker::Worker(net::Loop& loop, unsigned index, WorkerShared shared, EventLog& events)
    : loop_(loop), index_(index), shared_(std::move(shared)), events_(events) {}

Worker::~Worker() = default;

bool Worker::start(const std::shared_ptr<const Snapshot>& snap, const ListenPlan& plan, std::string* error,
                   std::string* failed_listener) {
  const config::Config& cfg = snap->config;
  loop_.resolver().set_ttls(cfg.egress.dns_ttl_ms, cfg.egress.dns_negative_ttl_ms);
  if (snap->policy) {
    policy_ = std::make_unique<core::PolicyAuthorizer>(snap->policy, snap->server_tls == nullptr, shared_.limiter);
  }
  core::Authorizer* authorizer = policy_ ? static_cast<core::Authorizer*>(policy_.get()) : &pass_through_;
  if (shared_.audit) {
    ingress_gate_ = std::make_unique<core::AuditGate>(*authorizer, shared_.audit->refusing());
    authorizer = ingress_gate_.get();
  }
  ingress_ = std::make_unique<core::ProxyServer>(loop_, ingress_options(cfg), snap->server_tls, *authorizer,
                                                   events_, shared_.ingress_count);
  ingress_->set_node_manifest(snap->node_manifest);
  ingress_->set_node_bundle(snap->node_bundle);
  if (!ingress_->listen(plan.ingress, error, plan.reuse_port, plan.ingress_fd)) {
    if (failed_listener) *failed_listener = "ingress";
    return false;
  }
  if (plan.egress) {
    core::ProxyOptions opts = egress_options(cfg);
    egress_router_ = std::make_unique<core::EgressRouter>(loop_, opts.upstream);
    egress_router_->set_peers(snap->policy.get(), snap->client_tls);
    core::Authorizer* router = egress_router_.get();
    if (shared_.audit) {
      egress_gate_ = std::make_unique<core::AuditGate>(*router, shared_.audit->refusing());
      router = egress_gate_.get();
    }
    egress_ = std::make_unique<core::ProxyServer>(loop_, opts, nullptr, *router, events_, shared_.egress_count);
    if (!egress_->listen(*plan.egress, error, plan.reuse_port, plan.egress_fd)) {
      if (failed_listener) *failed_listener = "egress";
      return false;
    }
  }
  return true;
}

std::vector<std::string> Worker::apply(const std::shared_ptr<const Snapshot>& next) {
  // Switching between policy and authenticate_only needs a restart (the
  // Runtime says so); otherwise the new policy applies from the next request.
  if (policy_ && next->policy) policy_->set_snapshot(next->policy);
  if (next->server_tls) ingress_->set_tls(next->server_tls);
  ingress_->set_run_time_options(ingress_options(next->config));
  ingress_->set_node_manifest(next->node_manifest);
  ingress_->set_node_bundle(next->node_bundle);
  loop_.resolver().set_ttls(next->config.egress.dns_ttl_ms, next->config.egress.dns_negative_ttl_ms);
  if (!egress_router_) return {};
  const core::ProxyOptions egress = egress_options(next->config);
  egress_->set_run_time_options(egress);
  egress_router_->set_run_time_options(egress.upstream);
  return egress_router_->set_peers(next->policy.get(), next->client_tls);
}

void Worker::begin_shutdown(uint32_t grace_ms) {
  ingress_->begin_shutdown();
  if (egress_) {
    egress_->begin_shutdown();
    egress_router_->close_idle();
  }
  // The loop ends when the last connection is gone; the grace timer only
  // forces that, it does not keep the loop alive by itself.
  grace_timer_ = std::make_unique<net::Timer>(loop_, [this] {
    LogLine("warn", "grace period over: closing remaining connections")
        .num("worker", index_)
        .num("active_connections", static_cast<int64_t>(ingress_->active_sessions()));
    close_all();
  });
  grace_timer_->start(grace_ms);
  grace_timer_->unref();
}

void Worker::close_all() {
  if (ingress_) ingress_->close_all();
  if (egress_) egress_->close_all();
}

size_t Worker::upstream_idle() const { return ingress_ ? ingress_->pool_idle_count() : 0; }

}  // namespace fedproxy::app
