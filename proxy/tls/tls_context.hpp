// One immutable mbedTLS configuration built from a CertBundle: TLS 1.3 only,
// the three suites of SPEC §2, mandatory verified client certs on the server
// side, and (server side) session-ticket keys. A connection keeps the context
// it started with to the end: mbedTLS needs the config to outlive the session.
#pragma once

#include <memory>
#include <string>

#include <mbedtls/ssl.h>

#include "proxy/base/result.hpp"
#include "certwatch/cert_bundle.hpp"

namespace fedproxy::tls {

enum class Role { server, client };

struct TlsOptions {
  bool session_tickets = true;        // server: issue tickets; client: accept them
  uint32_t ticket_lifetime_s = 3600;  // also the ticket key rotation period
  bool crl_fail_open = false;         // accept when the CRL is past nextUpdate
  // Server: ask for no client certificate (the peering listener, SPEC §13:
  // server-authenticated only; the join secret authenticates the client).
  bool request_client_cert = true;
};

class TicketSealer;  // private to tls_context.cpp / tls_engine.cpp

class TlsContext {
 public:
  static base::Result<std::shared_ptr<const TlsContext>> create(
      Role role, std::shared_ptr<const certwatch::CertBundle> bundle, const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Role role() const { return role_; }
  const mbedtls_ssl_config* config() const { return &conf_; }
  const certwatch::CertBundle& bundle() const { return *bundle_; }
  const std::shared_ptr<const certwatch::CertBundle>& shared_bundle() const { return bundle_; }
  const TlsOptions& options() const { return options_; }
  TicketSealer* ticket_sealer() const { return sealer_.get(); }

 private:
  TlsContext() = default;
  Role role_ = Role::server;
  TlsOptions options_;
  std::shared_ptr<const certwatch::CertBundle> bundle_;
  mutable mbedtls_ssl_config conf_;
  std::unique_ptr<TicketSealer> sealer_;
  bool conf_initialized_ = false;
};

}  // namespace fedproxy::tls
