#include "proxy/core/admin_server.hpp"

#include <vector>

#include "proxy/core/request_id.hpp"
#include "proxy/http1/request_parser.hpp"
#include "proxy/http1/serializer.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::core {

namespace {
constexpr uint64_t kAdminIdleMs = 30000;
}

AdminResponse AdminResponse::error(int status, std::string code, std::string message,
                                   std::string extra_headers) {
  AdminResponse r;
  r.status = status;
  r.error_code = std::move(code);
  r.message = std::move(message);
  r.extra_headers = std::move(extra_headers);
  return r;
}

// One admin client connection: small requests, small answers, keep-alive.
class AdminConnection final : public net::Deletable,
                              private net::TransportHandler,
                              private http1::RequestSink {
 public:
  AdminConnection(AdminServer& server, std::unique_ptr<net::Transport> t, bool unix_socket)
      : server_(server), t_(std::move(t)), parser_(http1::ParserLimits{}, *this),
        timer_(server.loop(), [this] { finish(false); }) {
    t_->set_handler(this);
    local_.unix_socket = unix_socket;
    // Unknown (getsockname failed): no address matches, only localhost does.
    if (!unix_socket) t_->local_address(&local_.ip, &local_.port);
    timer_.start(kAdminIdleMs);
  }
  void start() {
    const auto& tls = server_.options().tls;
    t_->start(tls ? std::make_unique<tls::TlsEngine>(tls) : nullptr);
  }
  void finish(bool graceful) {
    if (done_) return;
    done_ = true;
    *alive_ = false;
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
    parse_buffered();
  }
  void parse_buffered() {
    size_t pos = 0;
    while (!done_ && !waiting_ && pos < in_.size()) {
      size_t n = parser_.feed(in_.data() + pos, in_.size() - pos);
      pos += n;
      if (parser_.error() != http1::ParseError::none) {
        t_->write(http1::make_error_response(400, "bad_request", "The request is malformed.", new_request_id(), true));
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
  void on_request_head(http1::RequestHead&& head) override {
    head_ = std::move(head);
    body_.clear();
    body_too_large_ = false;
  }
  // Bounded: past the limit the rest is read and dropped, then refused.
  void on_request_body(const char* data, size_t len) override {
    if (body_too_large_ || body_.size() + len > server_.options().max_body_bytes) {
      body_too_large_ = true;
      body_.clear();
      return;
    }
    body_.append(data, len);
  }
  void on_request_complete() override {
    const std::string_view target = head_.target;
    const size_t q = target.find('?');
    const http1::Header* rid = http1::find_header(head_.headers, "x-request-id");
    const std::string request_id =
        rid && http1::is_valid_request_id(rid->value) ? rid->value : new_request_id();
    AdminHandler& handler = server_.handler();
    AdminVerdict verdict;
    if (server_.options().gated) {
      verdict = check_admin_request(AdminGateInput{head_.method, target, head_.version_minor, head_.headers, local_},
                                    handler.admin_access());
    }
    const AdminRequest request{head_.method,
                               target.substr(0, q),
                               q == std::string_view::npos ? std::string_view() : target.substr(q + 1),
                               head_.headers,
                               t_->peer_address(),
                               request_id,
                               verdict.actor,
                               body_};
    if (verdict.allowed() && body_too_large_) {
      respond(AdminResponse::error(413, "payload_too_large",
                                   "Request bodies here are limited to " +
                                       std::to_string(server_.options().max_body_bytes) + " bytes."),
              request_id);
    } else if (verdict.allowed()) {
      AdminResponse r = handler.handle_admin(request);
      if (r.later) {
        // Answered later: read nothing more until then.
        waiting_ = true;
        auto later = std::move(r.later);
        later([this, alive = alive_, rid = request_id](AdminResponse answer) {
          if (!*alive) return;
          waiting_ = false;
          respond(answer, rid);
          if (!done_) parse_buffered();
        });
        return;
      }
      respond(r, request_id);
    } else {
      handler.admin_refused(request, verdict);
      respond(AdminResponse::error(verdict.status, std::string(verdict.code), std::string(verdict.message),
                                   std::string(verdict.extra_headers)),
              request_id);
    }
  }

  // The one place admin responses are written: refusals in the SPEC §6 shape
  // (make_error_response), everything else as they are, both through the
  // codec's one local-response writer.
  void respond(const AdminResponse& r, std::string_view request_id) {
    const bool keep_alive = head_.keep_alive && r.status != 400;
    std::string out;
    http1::LocalResponse lr;
    lr.status = r.status;
    lr.close = !keep_alive;
    lr.head_only = head_.method == "HEAD";
    lr.extra_headers = r.extra_headers;
    if (!r.error_code.empty()) {
      std::string body = http1::make_error_body(r.error_code, r.message, request_id);
      if (!r.error_fields_json.empty()) {
        // {"error":...,"request_id":"..."} + "fields" (SPEC §6, 422 invalid).
        const size_t close = body.rfind('}');
        if (close != std::string::npos) body.insert(close, ",\"fields\":" + r.error_fields_json);
      }
      lr.body = body;
      http1::write_local_response(lr, out);
    } else {
      lr.content_type = r.content_type;
      lr.body = r.body;
      http1::write_local_response(lr, out);
    }
    t_->write(out);
    if (!keep_alive) finish(true);
  }

  AdminServer& server_;
  std::unique_ptr<net::Transport> t_;
  http1::RequestParser parser_;
  net::Timer timer_;
  std::string in_;
  http1::RequestHead head_;
  std::string body_;
  bool body_too_large_ = false;
  AdminLocalAddress local_;
  bool done_ = false;
  bool waiting_ = false;  // a `later` answer is outstanding
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

AdminServer::~AdminServer() { close(); }

bool AdminServer::listen(const config::Endpoint& endpoint, std::string* error, int inherited_fd) {
  const bool unix_socket = endpoint.kind == config::Endpoint::Kind::unix_socket;
  auto listener = net::Listener::create(
      loop_, endpoint,
      [this, unix_socket](std::unique_ptr<net::Transport> t) {
        auto* c = new AdminConnection(*this, std::move(t), unix_socket);
        connections_.insert(c);
        c->start();
      },
      false, inherited_fd);
  if (!listener) {
    *error = listener.message();
    return false;
  }
  listener_ = std::move(listener).value();
  bound_ = listener_->bound_address();
  return true;
}

void AdminServer::close() {
  listener_.reset();
  std::vector<AdminConnection*> open(connections_.begin(), connections_.end());
  for (auto* c : open) c->finish(true);
}

}  // namespace fedproxy::core
