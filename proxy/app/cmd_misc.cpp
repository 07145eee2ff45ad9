// Argument helpers, `fedproxy version` and `fedproxy check`.
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "proxy/app/build_info.hpp"
#include "proxy/app/cert_checks.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

std::string config_path_from_args(const std::vector<std::string>& args, std::string* error) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" || args[i] == "-c") {
      if (i + 1 >= args.size()) {
        *error = "--config needs a file";
        return "";
      }
      return args[i + 1];
    }
    if (args[i].rfind("--config=", 0) == 0) return args[i].substr(9);
  }
  const char* env = std::getenv("FEDPROXY_CONFIG");
  if (env && *env) return env;
  *error = "no config: pass --config FILE or set FEDPROXY_CONFIG";
  return "";
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

int cmd_version(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts("Usage: fedproxy version\nPrints fedproxy's version and the versions of the libraries it runs with.");
    return 0;
  }
  const BuildInfo& b = build_info();
  std::printf("fedproxy %s (mbedTLS %s, libuv %s, llhttp %s)\n", b.version.c_str(), b.mbedtls.c_str(),
              b.libuv.c_str(), b.llhttp.c_str());
  return 0;
}

int cmd_check(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts(
        "Usage: fedproxy check --config FILE\n"
        "Validates everything `run` would load (config, certificates, key, CA bundle, CRL,\n"
        "manifests, peers, routes and grants)\n"
        "and prints every problem found. Exit 0 when all is well, 1 otherwise.\n"
        "The node certificate must also chain to tls.ca_bundle, not be revoked by tls.crl\n"
        "and be valid now; one expiring within 30 days prints a \"warning:\" line (exit 0),\n"
        "as do a TCP admin listener without a token (admin.token_file) and a tls.ca_bundle\n"
        "of several CAs while some peer has no trust anchors of its own (peers[].ca_bundle,\n"
        "manifest trust_bundle).");
    return 0;
  }
  std::string error;
  std::string path = config_path_from_args(args, &error);
  if (path.empty()) {
    std::fprintf(stderr, "fedproxy check: %s\n", error.c_str());
    return kExitProblems;
  }
  tls::init_crypto();
  SnapshotResult built = build_snapshot(path);
  CertCheckFindings certs = check_node_certificate(path, static_cast<int64_t>(std::time(nullptr)));
  int problems = static_cast<int>(built.problems.size() + certs.problems.size());
  for (const auto& p : built.problems) std::printf("%s\n", p.c_str());
  for (const auto& p : certs.problems) std::printf("%s\n", p.c_str());
  for (const auto& w : certs.warnings) std::printf("warning: %s\n", w.c_str());
  for (const auto& w : built.warnings) std::printf("warning: %s\n", w.c_str());
  if (problems) {
    std::printf("%d problem%s found\n", problems, problems == 1 ? "" : "s");
    return kExitProblems;
  }
  std::printf("%s: OK\n", path.c_str());
  return 0;
}

}  // namespace fedproxy::app
