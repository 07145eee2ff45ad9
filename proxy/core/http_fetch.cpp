#include "proxy/core/http_fetch.hpp"

#include <utility>

namespace fedproxy::core {

HttpFetch::HttpFetch(Done done, size_t max_body_bytes) : done_(std::move(done)), max_body_(max_body_bytes) {}

HttpFetch::~HttpFetch() { abandon(); }

void HttpFetch::start(UpstreamPool& pool, const std::string& host, const std::string& path,
                      const std::string& user_agent, const std::string& accept) {
  auto acquired = pool.acquire(this, "GET");
  if (!acquired) {
    finish(acquired.message());
    return;
  }
  conn_ = *acquired;
  conn_->write("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + user_agent +
               "\r\nAccept: " + accept + "\r\n\r\n");
  conn_->request_done();
}

void HttpFetch::abandon() {
  finished_ = true;
  if (conn_) conn_->abandon();
  conn_ = nullptr;
}

void HttpFetch::on_upstream_head(http1::ResponseHead&& head) { result_.status = head.status; }

void HttpFetch::on_upstream_body(const char* data, size_t len) {
  if (finished_) return;
  if (result_.body.size() + len > max_body_) {
    // Too big to be what we asked for: stop reading it.
    if (conn_) conn_->abandon();
    conn_ = nullptr;
    finish("the response body is larger than " + std::to_string(max_body_) + " bytes");
    return;
  }
  result_.body.append(data, len);
}

void HttpFetch::on_upstream_complete() {
  conn_ = nullptr;
  finish("");
}

void HttpFetch::on_upstream_failed(UpstreamFailure, const std::string& reason, bool, bool) {
  conn_ = nullptr;
  finish(reason);
}

void HttpFetch::finish(std::string error) {
  if (finished_) return;
  finished_ = true;
  result_.error = std::move(error);
  if (!result_.error.empty()) result_.body.clear();
  done_(std::move(result_));
}

}  // namespace fedproxy::core
