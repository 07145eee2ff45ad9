// fedproxy: the federation sidecar. Dispatches to the subcommands.
#include <cstdio>
#include <string>
#include <vector>

#include "proxy/app/commands.hpp"

namespace {
const char* kUsage =
    "fedproxy — mTLS federation sidecar\n"
    "\n"
    "Usage:\n"
    "  fedproxy run --config FILE     run the proxy (ingress, egress, admin)\n"
    "  fedproxy check --config FILE   validate config, certificates and policy; exit 0 or 1\n"
    "  fedproxy audit verify FILE     check an audit log's hash chain; exit 0 or 1\n"
    "  fedproxy cert inspect FILE [--json]\n"
    "                                 show a certificate file: SANs, grant id, expiry, SHA-256\n"
    "  fedproxy manifest fetch PEER --endpoint URL --config FILE\n"
    "                                 fetch a peer's manifest over mTLS into manifests_dir\n"
    "  fedproxy reload [--config FILE | --admin ADDR]\n"
    "                                 ask the running proxy to reload; exit 0 only if it did\n"
    "  fedproxy policy explain --peer ORG --method M --target T (--config FILE | --admin ADDR)\n"
    "                                 what fedproxy would do with that request, and why; exit 0 allow, 1 deny\n"
    "  fedproxy peers list|add|set|revoke   [--admin ADDR | --config FILE]\n"
    "  fedproxy grants list|add|set|revoke  [--admin ADDR | --config FILE]\n"
    "                                 read and change peers and grants of the running proxy\n"
    "  fedproxy peer invite ORG | peer join URL --token T\n"
    "                                 join two organisations (a single-use token pins the CA)\n"
    "  fedproxy version               print the version and library versions\n"
    "  fedproxy COMMAND --help        help for one command\n"
    "\n"
    "FILE may also come from $FEDPROXY_CONFIG. Logs are JSON lines on stderr.\n"
    "Exit 2 on a usage error (unknown command or option, missing or extra argument).\n";
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? fedproxy::app::kExitUsage : 0;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "run") return fedproxy::app::cmd_run(args);
  if (cmd == "check") return fedproxy::app::cmd_check(args);
  if (cmd == "manifest") return fedproxy::app::cmd_manifest(args);
  if (cmd == "audit") return fedproxy::app::cmd_audit(args);
  if (cmd == "cert") return fedproxy::app::cmd_cert(args);
  if (cmd == "reload") return fedproxy::app::cmd_reload(args);
  if (cmd == "policy") return fedproxy::app::cmd_policy(args);
  if (cmd == "peers") return fedproxy::app::cmd_peers(args);
  if (cmd == "grants") return fedproxy::app::cmd_grants(args);
  if (cmd == "peer") return fedproxy::app::cmd_peer(args);
  if (cmd == "version" || cmd == "--version") return fedproxy::app::cmd_version(args);
  std::fprintf(stderr, "fedproxy: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return fedproxy::app::kExitUsage;
}
