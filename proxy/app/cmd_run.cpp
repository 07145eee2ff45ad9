// `fedproxy run`: build the whole snapshot before any socket opens (any
// problem is fatal: exit 2), then run until SIGTERM/SIGINT and a drain.
#include <csignal>
#include <cstdio>

#include "proxy/app/commands.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/runtime.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

int cmd_run(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts(
        "Usage: fedproxy run --config FILE\n"
        "Runs the proxy. Exit 0 after SIGTERM/SIGINT and a drain of in-flight requests\n"
        "(timeouts.shutdown_grace_ms); exit 2 when the config, a certificate, the key,\n"
        "the CA bundle, the CRL, a manifest or the policy cannot be loaded.\n"
        "SIGHUP reloads certificates, manifests and policy; SIGUSR1 reopens the audit log.");
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up must not kill us
  std::string error;
  std::string path = config_path_from_args(args, &error);
  if (path.empty()) {
    LogLine("fatal", error);
    return kExitFatal;
  }
  if (!tls::init_crypto()) {
    LogLine("fatal", "psa_crypto_init failed");
    return kExitFatal;
  }
  SnapshotResult built = build_snapshot(path);
  if (!built.snapshot) {
    // One line: the first problem names its file; the rest follow in "problems".
    LogLine line("fatal", built.problems.front());
    line.str("file", built.first_file);
    std::string all;
    for (const auto& p : built.problems) all += (all.empty() ? "" : " | ") + p;
    line.str("problems", all);
    return kExitFatal;
  }
  log_config_warnings(built.warnings);
  Runtime runtime(path, std::move(built.snapshot));
  return runtime.run();
}

}  // namespace fedproxy::app
