// The admin listener (SPEC §10): plain HTTP on loopback. Each connection is
// answered request by request by an AdminHandler that the app provides.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

#include "policy/config.hpp"
#include "proxy/net/listener.hpp"

namespace fedproxy::core {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class AdminHandler {
 public:
  virtual ~AdminHandler() = default;
  virtual AdminResponse handle_admin(std::string_view method, std::string_view path) = 0;
};

class AdminConnection;

class AdminServer {
 public:
  AdminServer(net::Loop& loop, AdminHandler& handler) : loop_(loop), handler_(handler) {}
  ~AdminServer();
  bool listen(const policy::Endpoint& endpoint, std::string* error);
  const std::string& bound_address() const { return bound_; }
  void close();  // stop listening and close open admin connections

  net::Loop& loop() { return loop_; }
  AdminHandler& handler() { return handler_; }
  void connection_gone(AdminConnection* c) { connections_.erase(c); }

 private:
  net::Loop& loop_;
  AdminHandler& handler_;
  std::unique_ptr<net::Listener> listener_;
  std::string bound_;
  std::unordered_set<AdminConnection*> connections_;
};

}  // namespace fedproxy::core
