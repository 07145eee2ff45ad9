// One GET over an UpstreamPool, the body collected up to a cap: what the
// heartbeat (a peer's manifest), the CRL refresher and the peers' trust
// bundle refresh need. The pool gives TLS and identity checks (peers) or
// plain TCP (a CRL distribution point), DNS off the loop, timeouts.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "proxy/core/upstream.hpp"

namespace fedproxy::core {

struct FetchResult {
  int status = 0;     // 0 = no response
  std::string body;   // complete only when error is empty
  std::string error;  // "" = a whole response arrived (any status)
};

// A member of its owner, which must outlive the callback: owners are
// deleted through the loop (net::Deletable), never inside `done`.
class HttpFetch final : private UpstreamUser {
 public:
  // `done` is called once, unless abandoned first.
  using Done = std::function<void(FetchResult&&)>;
  HttpFetch(Done done, size_t max_body_bytes);
  ~HttpFetch();
  HttpFetch(const HttpFetch&) = delete;
  HttpFetch& operator=(const HttpFetch&) = delete;

  // `host` is the Host header value, `path` origin-form.
  void start(UpstreamPool& pool, const std::string& host, const std::string& path,
             const std::string& user_agent, const std::string& accept);
  // No callback any more; the connection (if any) is closed.
  void abandon();

 private:
  void on_upstream_head(http1::ResponseHead&& head) override;
  void on_upstream_body(const char* data, size_t len) override;
  void on_upstream_complete() override;
  void on_upstream_failed(UpstreamFailure, const std::string& reason, bool, bool) override;
  void on_upstream_drained() override {}
  void finish(std::string error);

  Done done_;
  size_t max_body_;
  UpstreamConnection* conn_ = nullptr;
  FetchResult result_;
  bool finished_ = false;
};

}  // namespace fedproxy::core
