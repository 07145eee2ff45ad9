// Shared fixture for the TLS unit tests: one federation CA, a server node
// and a client node with URI SANs (the client also carries a grant id).
#pragma once

#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "proxy/tls/tls_context.hpp"
#include "proxy/tls/tls_engine.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_pump.hpp"

namespace fedproxy::testing {

inline constexpr char kServerUri[] = "spiffe://acme.example/nodes/a";
inline constexpr char kClientUri[] = "spiffe://partner-labs.example/nodes/primary";
inline constexpr char kGrant[] = "6f1c2b8e-3d4a-4f5b-9c7d-1e2f3a4b5c6d";

struct TlsEnv {
  TempDir dir;
  TestCa ca{"federation CA"};
  Issued server_node;
  Issued client_node;
  std::shared_ptr<const certwatch::CertBundle> server_bundle;
  std::shared_ptr<const certwatch::CertBundle> client_bundle;

  TlsEnv() {
    CertSpec s;
    s.subject = "CN=acme node a,O=acme";
    s.uri_sans = {kServerUri};
    s.dns_sans = {"acme.example"};
    server_node = ca.issue(s);
    server_bundle = make_bundle(dir, "server", server_node, ca.cert_pem());
    CertSpec c;
    c.subject = "CN=partner node,O=partner-labs";
    c.uri_sans = {kClientUri};
    c.grant_id = kGrant;
    client_node = ca.issue(c);
    client_bundle = make_bundle(dir, "client", client_node, ca.cert_pem());
  }

  static std::shared_ptr<const tls::TlsContext> context(tls::Role role,
                                                        std::shared_ptr<const certwatch::CertBundle> bundle,
                                                        tls::TlsOptions options = {}) {
    auto ctx = tls::TlsContext::create(role, std::move(bundle), options);
    REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? std::string() : ctx.message()));
    return std::move(ctx).value();
  }
  std::shared_ptr<const tls::TlsContext> server_ctx(tls::TlsOptions o = {}) const {
    return context(tls::Role::server, server_bundle, o);
  }
  std::shared_ptr<const tls::TlsContext> client_ctx(tls::TlsOptions o = {}) const {
    return context(tls::Role::client, client_bundle, o);
  }
  // A client bundle for a custom leaf certificate (issued by `issuer`),
  // trusting the federation CA.
  std::shared_ptr<const certwatch::CertBundle> client_bundle_for(const TestCa& issuer, const CertSpec& spec,
                                                                 const std::string& prefix) {
    return make_bundle(dir, prefix, issuer.issue(spec), ca.cert_pem());
  }
};

}  // namespace fedproxy::testing
