#include "config/etag.hpp"
#include "proxy/core/admin_gate.hpp"

// mbedTLS 3.6's constant_time.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/constant_time.h>
}

#include <optional>

#include "policy/audit.hpp"

namespace fedproxy::core {

namespace {

AdminVerdict refuse(int status, std::string_view code, std::string_view message,
                    std::string_view extra_headers = {}) {
  AdminVerdict v;
  v.status = status;
  v.code = code;
  v.message = message;
  v.extra_headers = extra_headers;
  return v;
}

// Methods a browser may send cross-site without changing anything (and
// without a CORS preflight for GET/HEAD); everything else changes state.
bool is_safe_method(std::string_view m) { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

// A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; they wrote a.b.c.d.
std::string_view unmapped(std::string_view ip) {
  constexpr std::string_view kMapped = "::ffff:";
  if (ip.starts_with(kMapped) && ip.find('.') != std::string_view::npos) ip.remove_prefix(kMapped.size());
  return ip;
}

// The Host names the listener itself: its address as the client reached it
// (a wildcard listener answers under the address of the interface), or
// localhost; a port, when written, is the listener's. On a unix socket only
// localhost applies, with any port (curl --unix-socket writes the URL's).
bool names_this_listener(const config::HostPort& host, const AdminLocalAddress& local) {
  const bool port_ok = !host.port || *host.port == local.port;
  if (host.host == "localhost") return local.unix_socket || port_ok;
  return !local.unix_socket && host.host == unmapped(local.ip) && port_ok;
}

// An admin.allowed_hosts entry without a port allows the name on any port
// (a port-forward or a published container port changes it); one with a
// port allows exactly that port.
bool is_allowed_host(const config::HostPort& host, const std::vector<config::HostPort>& allowed) {
  for (const auto& a : allowed) {
    if (a.host == host.host && (!a.port || a.port == host.port)) return true;
  }
  return false;
}

// The token of the one "Authorization: Bearer <token>" header; nullopt when
// there is none, several, or another scheme.
std::optional<std::string_view> bearer_token(const http1::Headers& headers) {
  constexpr std::string_view kScheme = "Bearer";
  const http1::Header* found = nullptr;
  for (const auto& h : headers) {
    if (!http1::iequals(h.name, "authorization")) continue;
    if (found) return std::nullopt;  // two credentials: which one would count?
    found = &h;
  }
  if (!found) return std::nullopt;
  std::string_view v = found->value;
  if (v.size() <= kScheme.size() || !http1::iequals(v.substr(0, kScheme.size()), kScheme) ||
      v[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (v.empty()) return std::nullopt;
  return v;
}

// Index of the configured token whose digest equals the presented one's, or
// tokens.size(). Both sides are SHA-256 digests of the same length and every
// configured token is compared in full, so the time taken tells nothing about
// how much of any token was right.
size_t matching_token(const std::vector<AdminToken>& tokens, std::string_view presented) {
  const std::string digest = admin_token_digest(presented);
  size_t match = tokens.size();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& want = tokens[i].sha256_hex;
    const bool equal = want.size() == digest.size() &&
                       mbedtls_ct_memcmp(want.data(), digest.data(), digest.size()) == 0;
    if (equal && match == tokens.size()) match = i;
  }
  return match;
}

}  // namespace

bool is_open_admin_path(std::string_view path) {
  return path == "/healthz" || path == "/readyz" || path == "/metrics";
}

std::string admin_token_digest(std::string_view token) { return config::sha256_hex(token); }

AdminVerdict check_admin_request(const AdminGateInput& r, const AdminAccess& access) {
  // Absolute-form ("http://host/status") would carry a second host name that
  // RFC 9112 §3.2.2 puts above Host; the admin API is no proxy: refuse it.
  if (!r.target.starts_with("/")) {
    return refuse(400, "bad_request", "The admin API takes origin-form request targets such as /status.");
  }

  const http1::Header* host_header = http1::find_header(r.headers, "host");
  if (!host_header) {
    if (r.version_minor >= 1) {
      return refuse(400, "bad_request", "An HTTP/1.1 request needs a Host header.");  // RFC 9112 §3.2
    }
    return refuse(421, "misdirected_request",
                  "The admin listener needs a Host header naming it (its address or localhost).");
  }
  auto host = config::parse_host(host_header->value);
  if (!host || !(names_this_listener(*host, r.local) || is_allowed_host(*host, access.allowed_hosts))) {
    return refuse(421, "misdirected_request",
                  "The Host header names neither this admin listener (its address or localhost) nor an "
                  "entry of admin.allowed_hosts.");
  }

  if (!is_safe_method(r.method) && http1::find_header(r.headers, "origin")) {
    return refuse(403, "forbidden_origin",
                  "State-changing admin requests from a web page (with an Origin header) are refused.");
  }

  AdminVerdict pass;
  if (access.tokens.empty()) return pass;
  const std::string_view path = r.target.substr(0, r.target.find('?'));
  if (is_open_admin_path(path)) return pass;
  auto token = bearer_token(r.headers);
  const size_t match = token ? matching_token(access.tokens, *token) : access.tokens.size();
  if (match == access.tokens.size()) {
    return refuse(401, "unauthorized", "This admin endpoint needs Authorization: Bearer <admin token>.",
                  "WWW-Authenticate: Bearer\r\n");
  }
  pass.actor = access.tokens[match].name;
  return pass;
}

}  // namespace fedproxy::core
