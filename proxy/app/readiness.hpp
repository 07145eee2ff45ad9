// Readiness of the local app: a TCP/unix connect to the upstream every few
// seconds. /readyz is 200 only while the last probe succeeded.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "proxy/net/transport.hpp"

namespace fedproxy::app {

class UpstreamProbe final : private net::TransportHandler {
 public:
  UpstreamProbe(net::Loop& loop, config::Endpoint upstream, uint32_t connect_timeout_ms);
  bool upstream_ok() const { return ok_; }
  void stop();

 private:
  void probe();
  void done(bool ok);
  void on_transport_connected() override { done(true); }
  void on_transport_data(const char*, size_t) override {}
  void on_transport_eof() override { done(true); }
  void on_transport_error(const std::string&) override { done(false); }
  void on_transport_drained() override {}

  net::Loop& loop_;
  config::Endpoint upstream_;
  uint32_t connect_timeout_ms_;
  std::unique_ptr<net::Transport> conn_;
  net::Timer interval_;
  net::Timer deadline_;
  bool ok_ = false;
};

}  // namespace fedproxy::app
