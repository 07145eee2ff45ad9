#include "proxy/app/join_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
// mbedTLS 3.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <psa/crypto.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <picojson.h>

#include "certwatch/digest.hpp"

namespace fedproxy::app {

namespace {

constexpr size_t kMaxReplyBytes = 256 * 1024;
constexpr int kCiphersuites[] = {MBEDTLS_TLS1_3_AES_128_GCM_SHA256, MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
                                 MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, 0};

JoinReply failure(std::string code, std::string message) {
  JoinReply r;
  r.error = std::move(code);
  r.message = std::move(message);
  return r;
}

// Owns everything mbedTLS needs for one connection.
struct Connection {
  mbedtls_net_context net;
  mbedtls_ssl_config conf;
  mbedtls_ssl_context ssl;
  Connection() {
    mbedtls_net_init(&net);
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_init(&ssl);
  }
  ~Connection() {
    mbedtls_ssl_close_notify(&ssl);
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_net_free(&net);
  }
};

struct Certs {
  mbedtls_x509_crt crt;
  Certs() { mbedtls_x509_crt_init(&crt); }
  ~Certs() { mbedtls_x509_crt_free(&crt); }
};

bool write_all(mbedtls_ssl_context* ssl, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    int n = mbedtls_ssl_write(ssl, reinterpret_cast<const unsigned char*>(data.data()) + off, data.size() - off);
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// One HTTP/1.1 exchange on the connection; the server (http1's local
// response writer) always sends Content-Length.
bool exchange(mbedtls_ssl_context* ssl, const std::string& request, int* status, std::string* body) {
  if (!write_all(ssl, request)) return false;
  std::string in;
  size_t header_end = std::string::npos;
  size_t want = 0;
  unsigned char buf[4096];
  for (;;) {
    if (header_end != std::string::npos && in.size() >= header_end + 4 + want) break;
    int n = mbedtls_ssl_read(ssl, buf, sizeof buf);
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE ||
        n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      continue;
    }
    if (n <= 0) return false;
    in.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    if (in.size() > kMaxReplyBytes) return false;
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      if (in.compare(0, 9, "HTTP/1.1 ") != 0 || in.size() < 12) return false;
      *status = std::atoi(in.substr(9, 3).c_str());
      std::string lower = in.substr(0, header_end);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const size_t cl = lower.find("\r\ncontent-length:");
      want = cl == std::string::npos ? 0 : std::strtoul(lower.c_str() + cl + 17, nullptr, 10);
      if (want > kMaxReplyBytes) return false;
    }
  }
  *body = in.substr(header_end + 4, want);
  return true;
}

std::string request(const std::string& method, const std::string& path, const std::string& host,
                    const std::string& body) {
  return method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// One certificate of the PEM bundle must have the pin, and the server's
// certificate must chain to that one alone.
bool pinned_chain(const mbedtls_x509_crt* server_cert, const std::string& bundle_pem, const std::string& pin) {
  if (!server_cert) return false;
  Certs bundle;
  if (mbedtls_x509_crt_parse(&bundle.crt, reinterpret_cast<const unsigned char*>(bundle_pem.c_str()),
                             bundle_pem.size() + 1) != 0) {
    return false;
  }
  for (const mbedtls_x509_crt* c = &bundle.crt; c && c->raw.p; c = c->next) {
    if (certwatch::sha256_hex(c->raw.p, c->raw.len) != pin) continue;
    Certs alone;
    if (mbedtls_x509_crt_parse_der(&alone.crt, c->raw.p, c->raw.len) != 0) return false;
    uint32_t flags = 0;
    return mbedtls_x509_crt_verify(const_cast<mbedtls_x509_crt*>(server_cert), &alone.crt, nullptr, nullptr, &flags,
                                   nullptr, nullptr) == 0;
  }
  return false;
}

// A TCP connection within timeout_ms (mbedtls_net_connect has no timeout of
// its own), left blocking for mbedTLS; -1 when none.
int connect_within(const std::string& host, const std::string& port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &list) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = list; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int err = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof err;
      err = ::poll(&p, 1, timeout_ms) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : ETIMEDOUT;
    }
    if (err != 0 || ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(list);
  return fd;
}

}  // namespace

JoinReply perform_join(const JoinAttempt& a) {
  const std::string where = a.host + ":" + a.port;
  Connection c;
  if (psa_crypto_init() != PSA_SUCCESS) return failure("peer_unavailable", "PSA crypto cannot start.");
  c.net.fd = connect_within(a.host, a.port, a.timeout_ms);
  if (c.net.fd < 0) return failure("peer_unavailable", "Cannot connect to " + where + ".");
  if (mbedtls_ssl_config_defaults(&c.conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                  MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
    return failure("peer_unavailable", "TLS configuration failed.");
  }
  mbedtls_ssl_conf_min_tls_version(&c.conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_max_tls_version(&c.conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_ciphersuites(&c.conf, kCiphersuites);
  // Nothing to verify against yet: the pin and the chain are checked by hand
  // below, before anything secret is sent.
  mbedtls_ssl_conf_authmode(&c.conf, MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_rng(&c.conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
  mbedtls_ssl_conf_read_timeout(&c.conf, static_cast<uint32_t>(a.timeout_ms));
  if (mbedtls_ssl_setup(&c.ssl, &c.conf) != 0) return failure("peer_unavailable", "TLS setup failed.");
  mbedtls_ssl_set_bio(&c.ssl, &c.net, mbedtls_net_send, nullptr, mbedtls_net_recv_timeout);
  for (;;) {
    int ret = mbedtls_ssl_handshake(&c.ssl);
    if (ret == 0) break;
    if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
      return failure("peer_unavailable", "The TLS handshake with " + where + " failed.");
    }
  }

  int status = 0;
  std::string body;
  if (!exchange(&c.ssl, request("GET", "/v1/join/ca", where, ""), &status, &body) || status != 200) {
    return failure("peer_unavailable", "Cannot fetch the CA certificate of " + where + ".");
  }
  picojson::value ca;
  const std::string err = picojson::parse(ca, body);
  if (!err.empty() || !ca.is<picojson::object>() || !ca.get("ca_bundle").is<std::string>() ||
      !pinned_chain(mbedtls_ssl_get_peer_cert(&c.ssl), ca.get("ca_bundle").get<std::string>(), a.ca_pin)) {
    return failure("peer_identity_mismatch",
                   "The server at " + where + " does not hold a certificate of the CA the token pins; nothing was sent.");
  }

  JoinReply reply;
  if (!exchange(&c.ssl, request("POST", "/v1/join", where, a.body), &reply.status, &reply.body)) {
    return failure("peer_unavailable", "No answer to the join request from " + where + ".");
  }
  return reply;
}

}  // namespace fedproxy::app
