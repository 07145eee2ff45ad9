// `fedproxy version` and `fedproxy check`.
#include <cstdio>
#include <ctime>

#include "proxy/app/args.hpp"
#include "proxy/app/build_info.hpp"
#include "proxy/app/cert_checks.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

int cmd_version(const std::vector<std::string>& args) {
  static const CommandSpec spec{
      "version",
      "Usage: fedproxy version\n"
      "Prints fedproxy's version and the versions of the libraries it runs with.\n"
      "Exit 0; 2 on a usage error (any argument).\n",
      {}, 0, 0};
  ParsedArgs parsed;
  if (auto done = parse_args(spec, args, &parsed)) return *done;
  const BuildInfo& b = build_info();
  std::printf("fedproxy %s (mbedTLS %s, libuv %s, llhttp %s)\n", b.version.c_str(), b.mbedtls.c_str(),
              b.libuv.c_str(), b.llhttp.c_str());
  return 0;
}

int cmd_check(const std::vector<std::string>& args) {
  static const CommandSpec spec{
      "check",
      "Usage: fedproxy check --config FILE\n"
      "Validates everything `run` would load (config, certificates, key, CA bundle, CRL,\n"
      "manifests, peers, routes and grants)\n"
      "and prints every problem found. Exit 0 when all is well, 1 otherwise,\n"
      "2 on a usage error (unknown option, extra argument, no config).\n"
      "The node certificate must also chain to tls.ca_bundle, not be revoked by tls.crl\n"
      "and be valid now; one expiring within 30 days prints a \"warning:\" line (exit 0),\n"
      "as do a TCP admin listener without a token (admin.token_file) and a tls.ca_bundle\n"
      "of several CAs while some peer has no trust anchors of its own (peers[].ca_bundle,\n"
      "manifest trust_bundle).\n"
      "FILE may also come from $FEDPROXY_CONFIG.\n",
      {{"--config", true, "-c"}}, 0, 0};
  ParsedArgs parsed;
  if (auto done = parse_args(spec, args, &parsed)) return *done;
  std::string error;
  std::string path = config_path(parsed, &error);
  if (path.empty()) return usage_error(spec, error);
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
