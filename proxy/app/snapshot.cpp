#include "proxy/app/snapshot.hpp"

#include <cstdlib>
#include <cstring>

#include "certwatch/cert_bundle.hpp"

namespace fedproxy::app {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && (!std::strcmp(v, "1") || !std::strcmp(v, "true") || !std::strcmp(v, "yes"));
}

TlsSnapshotResult build_tls_snapshot(const policy::Config& config) {
  TlsSnapshotResult result;
  certwatch::CertFiles files;
  files.cert = config.tls.cert;
  files.key = config.tls.key;
  files.ca_bundle = config.tls.ca_bundle;
  files.crl = config.tls.crl;
  files.allow_insecure_key_perms = env_flag("FEDPROXY_ALLOW_INSECURE_KEY_PERMS");
  auto loaded = certwatch::load_cert_bundle(files);
  if (!loaded.bundle) {
    result.file = loaded.file;
    result.error = loaded.error;
    return result;
  }
  tls::TlsOptions options;
  options.session_tickets = config.tls.session_tickets;
  options.ticket_lifetime_s = config.tls.ticket_rotation_ms / 1000 ? config.tls.ticket_rotation_ms / 1000 : 1;
  options.crl_fail_open = config.tls.crl_fail_open;
  std::string error;
  result.server = tls::TlsContext::create(tls::Role::server, loaded.bundle, options, &error);
  if (result.server) result.client = tls::TlsContext::create(tls::Role::client, loaded.bundle, options, &error);
  if (!result.server || !result.client) {
    result.server.reset();
    result.client.reset();
    result.file = config.tls.cert;
    result.error = error;
  }
  return result;
}

}  // namespace fedproxy::app
