// A bare mbedTLS client over memory buffers, configured directly (not via
// TlsContext) to play misbehaving or old peers: no client certificate,
// TLS 1.2 only, foreign cipher suites.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <mbedtls/ssl.h>

#include "certwatch/cert_bundle.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::testing {

struct RawClientOptions {
  int min_version = MBEDTLS_SSL_VERSION_TLS1_3;
  int max_version = MBEDTLS_SSL_VERSION_TLS1_3;
  std::vector<int> ciphersuites;  // empty = library default
  const certwatch::CertBundle* own = nullptr;  // certificate to present (nullptr = none)
  const certwatch::CertBundle* trust = nullptr;  // CA to verify the server with (nullptr = no verification)
};

class RawClient {
 public:
  explicit RawClient(const RawClientOptions& o) : suites_(o.ciphersuites) {
    tls::init_crypto();
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ssl_init(&ssl_);
    mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_min_tls_version(&conf_, static_cast<mbedtls_ssl_protocol_version>(o.min_version));
    mbedtls_ssl_conf_max_tls_version(&conf_, static_cast<mbedtls_ssl_protocol_version>(o.max_version));
    if (!suites_.empty()) {
      suites_.push_back(0);
      mbedtls_ssl_conf_ciphersuites(&conf_, suites_.data());
    }
    mbedtls_ssl_conf_rng(&conf_, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
    if (o.trust != nullptr) {
      mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
      mbedtls_ssl_conf_ca_chain(&conf_, o.trust->ca_chain(), nullptr);
    } else {
      mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (o.own != nullptr) mbedtls_ssl_conf_own_cert(&conf_, o.own->cert_chain(), o.own->key());
    mbedtls_ssl_setup(&ssl_, &conf_);
    mbedtls_ssl_set_hostname(&ssl_, nullptr);
    mbedtls_ssl_set_bio(&ssl_, this, &RawClient::send_cb, &RawClient::recv_cb, nullptr);
  }
  ~RawClient() {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  int handshake() { return mbedtls_ssl_handshake(&ssl_); }
  // After MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: the alert's description byte
  // (still in the record mbedTLS just processed), else -1.
  int last_alert() const {
    if (ssl_.MBEDTLS_PRIVATE(in_msgtype) != MBEDTLS_SSL_MSG_ALERT || ssl_.MBEDTLS_PRIVATE(in_msg) == nullptr) {
      return -1;
    }
    return ssl_.MBEDTLS_PRIVATE(in_msg)[1];
  }
  int read(std::string& out) {
    unsigned char buf[4096];
    for (;;) {
      int r = mbedtls_ssl_read(&ssl_, buf, sizeof buf);
      if (r > 0) {
        out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(r));
        continue;
      }
      return r;
    }
  }
  // mbedtls_ssl_write; with len 0 it sends one empty application-data record.
  int write(const char* data, size_t len) {
    return mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data), len);
  }
  void feed(const std::string& s) { in_ += s; }
  std::string take_output() {
    std::string o;
    o.swap(out_);
    return o;
  }

  // Runs the handshake against a server engine; returns the client's last
  // mbedTLS code (0 = done). The server's status is in *server_status.
  int run_against(tls::TlsEngine& server, tls::TlsEngine::Status* server_status) {
    int r = MBEDTLS_ERR_SSL_WANT_READ;
    tls::TlsEngine::Status st = tls::TlsEngine::Status::want_io;
    for (int i = 0; i < 100; ++i) {
      if (r != 0 && (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)) r = handshake();
      std::string c2s = take_output();
      if (!c2s.empty()) server.feed(c2s.data(), c2s.size());
      if (!server.handshake_done() && st != tls::TlsEngine::Status::error) st = server.handshake();
      std::string s2c = server.take_output();
      if (!s2c.empty()) feed(s2c);
      if (st == tls::TlsEngine::Status::error) {
        if (r == 0 || r == MBEDTLS_ERR_SSL_WANT_READ) {
          std::string sink;
          r = r == 0 ? read(sink) : handshake();
        }
        break;
      }
      if (r != 0 && r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
        // client failed: let the server see the alert
        std::string c = take_output();
        if (!c.empty()) server.feed(c.data(), c.size());
        if (!server.handshake_done()) st = server.handshake();
        break;
      }
      if (r == 0 && server.handshake_done()) break;
      if (c2s.empty() && s2c.empty() && r != 0) break;
    }
    *server_status = st;
    return r;
  }

 private:
  static int send_cb(void* ctx, const unsigned char* buf, size_t len) {
    static_cast<RawClient*>(ctx)->out_.append(reinterpret_cast<const char*>(buf), len);
    return static_cast<int>(len);
  }
  static int recv_cb(void* ctx, unsigned char* buf, size_t len) {
    auto* self = static_cast<RawClient*>(ctx);
    size_t avail = self->in_.size() - self->in_pos_;
    if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = avail < len ? avail : len;
    std::memcpy(buf, self->in_.data() + self->in_pos_, n);
    self->in_pos_ += n;
    return static_cast<int>(n);
  }
  std::vector<int> suites_;
  mbedtls_ssl_config conf_;
  mbedtls_ssl_context ssl_;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
};

}  // namespace fedproxy::testing
