#include "proxy/app/readiness.hpp"

namespace fedproxy::app {

namespace {
constexpr uint64_t kProbeIntervalMs = 5000;
}

UpstreamProbe::UpstreamProbe(net::Loop& loop, config::Endpoint upstream, uint32_t connect_timeout_ms)
    : loop_(loop),
      upstream_(std::move(upstream)),
      connect_timeout_ms_(connect_timeout_ms),
      interval_(loop, [this] { probe(); }),
      deadline_(loop, [this] { done(false); }) {
  interval_.unref();
  deadline_.unref();
  probe();
}

void UpstreamProbe::probe() {
  std::string error;
  conn_ = net::Transport::connect(loop_, upstream_, this, nullptr, &error);
  if (!conn_) {
    done(false);
    return;
  }
  deadline_.start(connect_timeout_ms_);
}

void UpstreamProbe::done(bool ok) {
  ok_ = ok;
  deadline_.stop();
  if (conn_) {
    conn_->close();
    // Destroy at a loop boundary: we may be inside one of its callbacks.
    net::Transport::close_gracefully_and_release(std::move(conn_));
  }
  interval_.start(kProbeIntervalMs);
}

void UpstreamProbe::stop() {
  interval_.stop();
  deadline_.stop();
  if (conn_) {
    conn_->close();
    net::Transport::close_gracefully_and_release(std::move(conn_));
  }
}

}  // namespace fedproxy::app
