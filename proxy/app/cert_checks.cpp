// The node-certificate checks of `fedproxy check` (see the header).
#include "proxy/app/cert_checks.hpp"

#include <memory>

#include "certwatch/cert_bundle.hpp"
#include "config/config.hpp"
#include "proxy/app/snapshot.hpp"

namespace fedproxy::app {

CertCheckFindings check_node_certificate(const std::string& config_path, int64_t now) {
  CertCheckFindings out;
  auto loaded = config::load_config_file(config_path, config::EnvOverrides::from_environment());
  if (!loaded.config || loaded.config->tls.cert.empty()) return out;
  const config::TlsFiles& tls = loaded.config->tls;
  certwatch::CertFiles files;
  files.cert = tls.cert;
  files.key = tls.key;
  files.ca_bundle = tls.ca_bundle;
  files.crl = tls.crl;
  files.allow_insecure_key_perms = env_flag("FEDPROXY_ALLOW_INSECURE_KEY_PERMS");
  auto bundle_loaded = certwatch::load_cert_bundle(files);
  if (!bundle_loaded) return out;
  const std::shared_ptr<const certwatch::CertBundle>& bundle = *bundle_loaded;

  const std::string prefix = tls.cert + ": node certificate ";
  if (std::string why = certwatch::verify_node_chain(*bundle); !why.empty()) {
    // Revoked is always wrong. Not chaining to tls.ca_bundle is only a
    // warning: the bundle is what *peers'* certificates must chain to, and
    // in a federation peers often use another CA than ours (and during a CA
    // rotation the bundle may already hold only the new CA). `run` accepts it.
    if (why.rfind("does not chain", 0) == 0) {
      out.warnings.push_back(prefix + why + " (fine if peers trust our CA through their own bundle)");
    } else {
      out.problems.push_back(prefix + why);
    }
  }
  const int64_t not_before = certwatch::cert_details(*bundle->cert_chain()).not_before;
  const int64_t not_after = bundle->cert_not_after();
  const int64_t days = certwatch::days_left(not_after, now);
  if (not_after < now) {
    out.problems.push_back(prefix + "expired on " + certwatch::unix_to_iso8601(not_after) + " (" +
                           std::to_string((now - not_after) / 86400) + " days ago)");
  } else if (not_before > now) {
    out.problems.push_back(prefix + "is not valid before " + certwatch::unix_to_iso8601(not_before));
  } else if (days < kCertWarningDays) {
    out.warnings.push_back(prefix + "expires in " + std::to_string(days) + " days (" +
                           certwatch::unix_to_iso8601(not_after) + ")");
  }
  return out;
}

}  // namespace fedproxy::app
