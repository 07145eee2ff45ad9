#include "proxy/core/admin_server.hpp"

#include <vector>

#include "proxy/http1/request_parser.hpp"
#include "proxy/http1/serializer.hpp"

namespace fedproxy::core {

namespace {
constexpr uint64_t kAdminIdleMs = 30000;
}

// One admin client connection: small requests, small answers, keep-alive.
class AdminConnection final : public net::Deletable,
                              private net::TransportHandler,
                              private http1::RequestSink {
 public:
  AdminConnection(AdminServer& server, std::unique_ptr<net::Transport> t)
      : server_(server), t_(std::move(t)), parser_(http1::ParserLimits{}, *this),
        timer_(server.loop(), [this] { finish(false); }) {
    t_->set_handler(this);
    timer_.start(kAdminIdleMs);
  }
  void start() { t_->start(nullptr); }
  void finish(bool graceful) {
    if (done_) return;
    done_ = true;
    timer_.stop();
    if (graceful) {
      net::Transport::close_gracefully_and_release(std::move(t_));
    } else {
      t_->close();
    }
    server_.connection_gone(this);
    server_.loop().defer_delete(this);
  }

 private:
  void on_transport_connected() override {}
  void on_transport_data(const char* data, size_t len) override {
    timer_.start(kAdminIdleMs);
    in_.append(data, len);
    size_t pos = 0;
    while (!done_ && pos < in_.size()) {
      size_t n = parser_.feed(in_.data() + pos, in_.size() - pos);
      pos += n;
      if (parser_.error() != http1::ParseError::none) {
        t_->write(http1::make_error_response(400, "bad_request", "The request is malformed.", "", true));
        finish(true);
        return;
      }
      if (parser_.paused()) parser_.resume();
      if (n == 0) break;
    }
    if (!done_) in_.erase(0, pos);
  }
  void on_transport_eof() override { finish(true); }
  void on_transport_error(const std::string&) override { finish(false); }
  void on_transport_drained() override {}
  void on_request_head(http1::RequestHead&& head) override { head_ = std::move(head); }
  void on_request_body(const char*, size_t) override {}
  void on_request_complete() override {
    std::string_view path = head_.target;
    if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    AdminResponse r = server_.handler().handle_admin(head_.method, path);
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + http1::reason_phrase(r.status) +
                      "\r\nContent-Type: " + r.content_type +
                      "\r\nContent-Length: " + std::to_string(r.body.size()) +
                      (head_.keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    if (head_.method != "HEAD") out += r.body;
    t_->write(out);
    if (!head_.keep_alive) finish(true);
  }

  AdminServer& server_;
  std::unique_ptr<net::Transport> t_;
  http1::RequestParser parser_;
  net::Timer timer_;
  std::string in_;
  http1::RequestHead head_;
  bool done_ = false;
};

AdminServer::~AdminServer() { close(); }

bool AdminServer::listen(const policy::Endpoint& endpoint, std::string* error) {
  listener_ = net::Listener::create(
      loop_, endpoint,
      [this](std::unique_ptr<net::Transport> t) {
        auto* c = new AdminConnection(*this, std::move(t));
        connections_.insert(c);
        c->start();
      },
      error);
  if (!listener_) return false;
  bound_ = listener_->bound_address();
  return true;
}

void AdminServer::close() {
  listener_.reset();
  std::vector<AdminConnection*> open(connections_.begin(), connections_.end());
  for (auto* c : open) c->finish(true);
}

}  // namespace fedproxy::core
