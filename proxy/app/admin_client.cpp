#include "proxy/app/admin_client.hpp"

#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "proxy/app/commands.hpp"
#include "proxy/net/address.hpp"

namespace fedproxy::app {

namespace {
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Content-Length of the head, or -1 when absent (then the body ends at EOF).
long content_length(const std::string& head) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    if (head.size() - pos >= 15 && strncasecmp(head.c_str() + pos, "content-length:", 15) == 0) {
      return std::strtol(head.c_str() + pos + 15, nullptr, 10);
    }
  }
  return -1;
}
// A token file as the proxy reads it: one token, trailing whitespace dropped.
bool read_token(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read the admin token file " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
  *token = t;
  return true;
}
}  // namespace

std::optional<AdminTarget> resolve_admin_target(const ParsedArgs& opts, std::string* error) {
  std::optional<config::Config> cfg;
  std::string path = config_path(opts, error);
  error->clear();
  if (!path.empty()) {
    config::ConfigResult loaded = config::load_config_file(path);
    if (loaded.config) {
      cfg = std::move(loaded.config);
    } else if (loaded.partial) {
      cfg = std::move(loaded.partial);
    } else if (!opts.has("--admin")) {
      *error = loaded.problems.empty() ? "cannot read " + path : loaded.problems.front().to_string();
      return std::nullopt;
    }
  }
  AdminTarget target;
  if (auto a = opts.value("--admin")) {
    auto e = config::parse_endpoint(*a, error);
    if (!e) {
      *error = "--admin: " + *error;
      return std::nullopt;
    }
    target.endpoint = *e;
  } else if (!cfg) {
    *error = "no admin address: pass --admin ADDR or --config FILE";
    return std::nullopt;
  } else if (!cfg->admin.listen) {
    *error = path + ": admin.listen is null (no admin listener to ask): pass --admin ADDR";
    return std::nullopt;
  } else {
    target.endpoint = *cfg->admin.listen;
  }
  const char* env_token = std::getenv("FEDPROXY_ADMIN_TOKEN");
  if (auto f = opts.value("--token-file")) {
    if (!read_token(*f, &target.token, error)) return std::nullopt;
  } else if (env_token && *env_token) {
    target.token = env_token;
  } else if (cfg && !cfg->admin.tokens.empty()) {
    if (!read_token(cfg->admin.tokens.front().path, &target.token, error)) return std::nullopt;
  }
  return target;
}

std::string json_field(const picojson::value& v, const std::string& name) {
  if (!v.is<picojson::object>() || !v.contains(name)) return "";
  const picojson::value& f = v.get(name);
  return f.is<std::string>() ? f.get<std::string>() : f.serialize();
}

VerbAnswer call_admin_verb(const std::string& name, const AdminTarget& target, const std::string& method,
                           const std::string& path, const std::string& body, const std::string& headers,
                           bool json_out) {
  constexpr int kTimeoutMs = 60000;  // a join waits for the other organisation
  VerbAnswer a;
  a.reply = admin_call(target.endpoint, method, path, target.token, kTimeoutMs, body, headers);
  if (!a.reply.reached) {
    std::fprintf(stderr, "fedproxy %s: %s\n", name.c_str(), a.reply.error.c_str());
    a.exit_code = kExitUnreachable;
    return a;
  }
  const bool parsed = picojson::parse(a.json, a.reply.body).empty();
  if (a.reply.status < 200 || a.reply.status >= 300) {
    if (json_out) std::fputs(a.reply.body.c_str(), stdout);
    std::string detail = json_field(a.json, "message");
    if (parsed && a.json.contains("fields") && a.json.get("fields").is<picojson::array>()) {
      for (const auto& f : a.json.get("fields").get<picojson::array>()) {
        detail += "\n  " + json_field(f, "field") + ": " + json_field(f, "message");
      }
    }
    std::fprintf(stderr, "fedproxy %s: refused: HTTP %d %s: %s\n", name.c_str(), a.reply.status,
                 json_field(a.json, "error").c_str(), detail.c_str());
    a.exit_code = kExitProblems;
    return a;
  }
  if (!parsed) {
    std::fprintf(stderr, "fedproxy %s: not a JSON answer from %s\n", name.c_str(), target.endpoint.text.c_str());
    a.exit_code = kExitUnreachable;
  }
  return a;
}

std::string reply_header(const AdminReply& reply, std::string_view name) {
  size_t pos = 0;
  while ((pos = reply.head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    const size_t end = reply.head.find("\r\n", pos);
    std::string_view line(reply.head.data() + pos, (end == std::string::npos ? reply.head.size() : end) - pos);
    const size_t colon = line.find(':');
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return std::string(v);
    }
  }
  return "";
}

AdminReply admin_call(const config::Endpoint& admin, const std::string& method, const std::string& path,
                      const std::string& token, int timeout_ms, const std::string& body,
                      const std::string& extra_headers) {
  AdminReply reply;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (admin.kind == config::Endpoint::Kind::unix_socket) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    if (admin.path.size() >= sizeof(un->sun_path)) {
      reply.error = "unix socket path too long: " + admin.path;
      return reply;
    }
    std::memcpy(un->sun_path, admin.path.c_str(), admin.path.size() + 1);
    len = sizeof(sockaddr_un);
  } else {
    config::Endpoint to = admin;
    if (to.host == "0.0.0.0") to.host = "127.0.0.1";
    if (to.host == "::") to.host = "::1";
    if (!net::to_sockaddr(to, &ss, &reply.error)) return reply;
    len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }
  Fd s;
  s.fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    reply.error = sys_error("socket");
    return reply;
  }
  // Bounds connect() (Linux applies SO_SNDTIMEO to it), send() and recv().
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    reply.error = sys_error("cannot connect to the admin listener " + admin.text);
    return reply;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fedproxy-cli\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += extra_headers;
  if (!body.empty()) req += "Content-Type: application/json\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  for (size_t off = 0; off < req.size();) {
    ssize_t n = ::send(s.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      reply.error = sys_error("cannot send to the admin listener " + admin.text);
      return reply;
    }
    off += static_cast<size_t>(n);
  }
  std::string in;
  size_t head_end = std::string::npos;
  long body_len = -1;
  char buf[4096];
  for (;;) {
    if (head_end != std::string::npos && body_len >= 0 && in.size() >= head_end + 4 + static_cast<size_t>(body_len)) break;
    ssize_t n = ::recv(s.fd, buf, sizeof(buf), 0);
    if (n < 0) {
      reply.error = errno == EAGAIN || errno == EWOULDBLOCK
                        ? "no answer from the admin listener " + admin.text + " within " + std::to_string(timeout_ms) + " ms"
                        : sys_error("reading from the admin listener " + admin.text);
      return reply;
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > (1u << 20)) break;  // an admin answer is small; do not grow without bound
    if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
      body_len = content_length(in.substr(0, head_end + 2));
    }
  }
  int status = 0;
  if (head_end == std::string::npos || std::sscanf(in.c_str(), "HTTP/1.%*d %d", &status) != 1) {
    reply.error = "not an HTTP answer from " + admin.text;
    return reply;
  }
  reply.reached = true;
  reply.status = status;
  reply.head = in.substr(0, head_end + 2);
  reply.body = in.substr(head_end + 4);
  if (body_len >= 0 && reply.body.size() > static_cast<size_t>(body_len)) reply.body.resize(static_cast<size_t>(body_len));
  return reply;
}

}  // namespace fedproxy::app
