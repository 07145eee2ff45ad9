// A listening socket (TCP or unix) that hands each accepted connection over
// as a Transport (not yet started: the caller attaches a handler and TLS).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "proxy/base/result.hpp"
#include "config/config.hpp"
#include "proxy/net/transport.hpp"

namespace fedproxy::net {

class Listener {
 public:
  using AcceptFn = std::function<void(std::unique_ptr<Transport>)>;
  // Binds and listens. nullptr with *error set on failure. reuse_port (TCP
  // only): SO_REUSEPORT, so that one listener per worker loop can bind the
  // same address and the kernel spreads connections over them. A unix
  // socket is created mode 0600 (owner only), replaces a stale socket file
  // nobody accepts on, and is removed when the listener is destroyed.
  // inherited_fd >= 0: a socket already bound and listening (systemd socket
  // activation) of the endpoint's kind, used instead of binding; the
  // listener owns it from here (closed even on failure), and leaves a unix
  // socket's file to whoever made it.
  static base::Result<std::unique_ptr<Listener>> create(Loop& loop, const config::Endpoint& endpoint,
                                                        AcceptFn on_accept, bool reuse_port = false,
                                                        int inherited_fd = -1);
  ~Listener();  // stops accepting (closes the handle)
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The address actually bound ("127.0.0.1:43122" when port 0 was asked).
  const std::string& bound_address() const { return bound_; }
  void on_connection(int status);  // libuv trampoline

 private:
  Listener(Loop& loop, AcceptFn on_accept) : loop_(loop), on_accept_(std::move(on_accept)) {}
  struct Handle;
  Loop& loop_;
  AcceptFn on_accept_;
  Handle* handle_ = nullptr;
  bool is_pipe_ = false;
  std::string bound_;
  std::string unlink_path_;
};

}  // namespace fedproxy::net
