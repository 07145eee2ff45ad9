// `fedproxy run`: build the whole snapshot before any socket opens (any
// problem is fatal: exit 2), then run until SIGTERM/SIGINT and a drain.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/app/log.hpp"
#include "proxy/app/runtime.hpp"
#include "proxy/app/socket_activation.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::app {

int cmd_run(const std::vector<std::string>& args) {
  static const CommandSpec spec{
      "run",
      "Usage: fedproxy run --config FILE [--log-level debug|info|warn|error]\n"
      "Runs the proxy. Exit 0 after SIGTERM/SIGINT and a drain of in-flight requests\n"
      "(timeouts.shutdown_grace_ms); exit 2 on a usage error (unknown option, extra\n"
      "argument, no config), when the config, a certificate, the key, the CA bundle,\n"
      "the CRL, a manifest or the policy cannot be loaded, and when a listener cannot\n"
      "be bound (one JSON line naming the address and the reason; no \"listening\"\n"
      "line is logged before every listener is bound).\n"
      "SIGHUP reloads certificates, manifests and policy; SIGUSR1 reopens the audit log.\n"
      "--log-level (or $FEDPROXY_LOG_LEVEL) drops log lines below that level (default info).\n"
      "FILE may also come from $FEDPROXY_CONFIG.\n"
      "systemd: with $NOTIFY_SOCKET set, READY=1 is sent once every listener is bound,\n"
      "RELOADING=1/READY=1 around each reload, STOPPING=1 at shutdown (Type=notify).\n"
      "With $LISTEN_PID/$LISTEN_FDS (socket activation), inherited listening sockets are\n"
      "used for the listeners whose address (or $LISTEN_FDNAMES name: ingress, egress,\n"
      "admin) matches, instead of binding.\n",
      {{"--config", true, "-c"}, {"--log-level", true}},
      0,
      0};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  const char* env_level = std::getenv("FEDPROXY_LOG_LEVEL");
  std::string level = opts.value("--log-level").value_or(env_level ? env_level : "info");
  if (!set_log_level(level)) {
    return usage_error(spec, "unknown log level '" + level + "' (debug, info, warn, error)");
  }
  // Before anything opens a descriptor: fds 3.. must still be the ones
  // systemd passed when we check them (and a wrong LISTEN_FDS must not make
  // us adopt, or later close, a descriptor of our own).
  InheritedSockets inherited = InheritedSockets::from_environment();
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up must not kill us
  std::string error;
  std::string path = config_path(opts, &error);
  if (path.empty()) return usage_error(spec, error);
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
  Runtime runtime(path, std::move(built.snapshot), std::move(inherited));
  return runtime.run();
}

}  // namespace fedproxy::app
