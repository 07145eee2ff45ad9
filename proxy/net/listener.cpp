#include "proxy/net/listener.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <uv.h>

#include "proxy/net/address.hpp"

namespace fedproxy::net {

// Defined in transport.cpp: accepted connections get their handles there.
Transport::Handles* new_accept_handles(Loop& loop, bool is_pipe);
void free_unadopted_handles(Transport::Handles* hs);
uv_stream_t* stream_of(Transport::Handles* hs);

struct Listener::Handle {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } s;
  Listener* owner;
};

namespace {
void connection_cb(uv_stream_t* server, int status) {
  auto* owner = static_cast<Listener*>(server->data);
  if (owner) owner->on_connection(status);
}
// libuv 1.44 has no UV_TCP_REUSEPORT: make the socket ourselves, set the
// options before bind() (SO_REUSEPORT only counts then) and hand it to libuv.
// A unix socket path left behind by a process that is gone is removed; one
// that a live process still accepts on (connect() succeeds), or a path that
// is not a socket, is an error (EADDRINUSE / EEXIST as libuv codes).
int remove_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? 0 : uv_translate_sys_error(errno);
  if (!S_ISSOCK(st.st_mode)) return UV_EEXIST;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  // A unix-socket connect() does not wait: it is accepted into the backlog
  // or refused at once.
  const bool alive = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  if (alive) return UV_EADDRINUSE;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return uv_translate_sys_error(errno);
  return 0;
}

int bind_reuse_port(uv_tcp_t* tcp, const sockaddr_storage& addr) {
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  int one = 1;
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    int err = errno;
    ::close(fd);
    return uv_translate_sys_error(err);
  }
  int rc = uv_tcp_open(tcp, fd);
  if (rc != 0) ::close(fd);
  return rc;
}
}  // namespace

base::Result<std::unique_ptr<Listener>> Listener::create(Loop& loop, const config::Endpoint& endpoint,
                                                         AcceptFn on_accept, bool reuse_port, int inherited_fd) {
  std::unique_ptr<Listener> l(new Listener(loop, std::move(on_accept)));
  auto* h = new Handle;
  l->handle_ = h;
  int rc;
  if (inherited_fd >= 0) {
    l->is_pipe_ = endpoint.kind == config::Endpoint::Kind::unix_socket;
    if (l->is_pipe_) {
      uv_pipe_init(loop.raw(), &h->s.pipe, 0);
      rc = uv_pipe_open(&h->s.pipe, inherited_fd);
      l->bound_ = endpoint.text;
    } else {
      uv_tcp_init(loop.raw(), &h->s.tcp);
      rc = uv_tcp_open(&h->s.tcp, inherited_fd);
    }
    h->s.handle.data = l.get();
    // Not adopted by the handle: closing the handle would not close it.
    if (rc != 0) ::close(inherited_fd);
  } else if (endpoint.kind == config::Endpoint::Kind::unix_socket) {
    l->is_pipe_ = true;
    uv_pipe_init(loop.raw(), &h->s.pipe, 0);
    h->s.handle.data = l.get();
    rc = remove_stale_socket(endpoint.path);
    if (rc == 0) rc = uv_pipe_bind(&h->s.pipe, endpoint.path.c_str());
    if (rc == 0) {
      l->unlink_path_ = endpoint.path;  // ours now: removed when the listener goes
      // Owner only, set before listen(): connect() checks write permission
      // on the socket file, and nothing can connect before listen().
      if (::chmod(endpoint.path.c_str(), 0600) != 0) rc = uv_translate_sys_error(errno);
    }
    l->bound_ = endpoint.text;
  } else {
    uv_tcp_init(loop.raw(), &h->s.tcp);
    h->s.handle.data = l.get();
    sockaddr_storage addr{};
    std::string error;
    if (!to_sockaddr(endpoint, &addr, &error)) return base::make_error(base::Errc::invalid, std::move(error));
    rc = reuse_port ? bind_reuse_port(&h->s.tcp, addr)
                    : uv_tcp_bind(&h->s.tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
  }
  if (rc == 0) rc = uv_listen(&h->s.stream, 511, connection_cb);
  if (rc != 0) {
    // l's destructor closes the handle.
    return base::make_error(base::Errc::io, "cannot listen on " + endpoint.text +
                                                (inherited_fd >= 0 ? " (inherited socket)" : "") + ": " +
                                                uv_strerror(rc));
  }
  if (!l->is_pipe_) {
    sockaddr_storage bound{};
    int len = sizeof(bound);
    uv_tcp_getsockname(&h->s.tcp, reinterpret_cast<sockaddr*>(&bound), &len);
    l->bound_ = format_sockaddr(reinterpret_cast<sockaddr*>(&bound));
  }
  return l;
}

Listener::~Listener() {
  if (!handle_) return;
  handle_->s.handle.data = nullptr;
  uv_close(&handle_->s.handle, [](uv_handle_t* h) {
    delete reinterpret_cast<Listener::Handle*>(reinterpret_cast<char*>(h));
  });
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

void Listener::on_connection(int status) {
  if (status < 0) return;  // EMFILE etc.: libuv sheds the connection itself
  Transport::Handles* hs = new_accept_handles(loop_, is_pipe_);
  if (uv_accept(&handle_->s.stream, stream_of(hs)) != 0) {
    free_unadopted_handles(hs);
    return;
  }
  on_accept_(Transport::adopt(loop_, hs));
}

}  // namespace fedproxy::net
