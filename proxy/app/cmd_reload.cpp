// `fedproxy reload`: asks the running proxy to reload (POST /reload on its
// admin listener) and says whether it did, for systemd's ExecReload: a
// SIGHUP cannot report a failed reload, so `systemctl reload` used to
// succeed on a broken config (SPEC §10).
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <picojson.h>

#include "config/config.hpp"
#include "proxy/app/admin_client.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"

namespace fedproxy::app {

namespace {

const char* kReloadUsage =
    "Usage: fedproxy reload [--config FILE] [--admin ADDR] [--token-file FILE] [--timeout-ms N] [--json]\n"
    "Asks the running fedproxy to reload its configuration, certificates, manifests and\n"
    "policy (POST /reload on the admin listener) and prints the result. For systemd:\n"
    "  ExecReload=/usr/bin/fedproxy reload --config /etc/fedproxy/fedproxy.json\n"
    "ADDR (host:port or unix:/path) defaults to admin.listen of the config (a wildcard\n"
    "address is reached over loopback); the bearer token comes from --token-file, else\n"
    "$FEDPROXY_ADMIN_TOKEN, else the config's admin.token_file (or first admin.tokens file).\n"
    "--timeout-ms bounds the whole call (default 60000). --json prints the answer as is.\n"
    "Exit codes:\n"
    "  0  reloaded: everything applied\n"
    "  1  not reloaded as asked: the reload failed (the previous configuration keeps\n"
    "     serving), it needs a restart for some keys (restart_required), or the admin\n"
    "     API refused the request (no or wrong token, 4xx)\n"
    "  2  usage error: unknown option, extra argument, no config and no --admin, a config\n"
    "     without admin.listen, an unreadable config or token file\n"
    "  3  the running fedproxy could not be reached (not running, wrong address, timeout,\n"
    "     not an admin answer)\n"
    "FILE may also come from $FEDPROXY_CONFIG.\n";

}  // namespace

int cmd_reload(const std::vector<std::string>& args) {
  static const CommandSpec spec{"reload",
                                kReloadUsage,
                                {{"--config", true, "-c"},
                                 {"--admin", true},
                                 {"--token-file", true},
                                 {"--timeout-ms", true},
                                 {"--json"}},
                                0,
                                0};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  int timeout_ms = 60000;
  if (auto t = opts.value("--timeout-ms")) {
    char* end = nullptr;
    long v = std::strtol(t->c_str(), &end, 10);
    if (!end || *end || v <= 0 || v > 3600000) return usage_error(spec, "--timeout-ms needs a number of milliseconds");
    timeout_ms = static_cast<int>(v);
  }

  // The config is read for admin.listen and the token file only: a config
  // that the proxy would refuse must still tell us where to ask (the reload
  // itself then reports what is wrong with it).
  std::string error;
  std::optional<AdminTarget> target = resolve_admin_target(opts, &error);
  if (!target) return usage_error(spec, error);
  const config::Endpoint* admin = &target->endpoint;
  const std::string& token = target->token;

  AdminReply reply = admin_call(*admin, "POST", "/reload", token, timeout_ms);
  if (!reply.reached) {
    std::fprintf(stderr, "fedproxy reload: %s\n", reply.error.c_str());
    return kExitUnreachable;
  }
  if (opts.has("--json")) std::fputs(reply.body.c_str(), stdout);
  picojson::value v;
  std::string parse_error = picojson::parse(v, reply.body);
  const bool is_object = parse_error.empty() && v.is<picojson::object>();
  auto field = [&](const char* key) -> std::string {
    if (!is_object) return "";
    const auto& o = v.get<picojson::object>();
    auto it = o.find(key);
    return it != o.end() && it->second.is<std::string>() ? it->second.get<std::string>() : "";
  };
  if (reply.status >= 400 && reply.status < 500) {
    std::fprintf(stderr, "fedproxy reload: refused by %s: HTTP %d %s\n", admin->text.c_str(), reply.status,
                 field("error").c_str());
    return kExitProblems;
  }
  if (!is_object || (reply.status != 200 && reply.status != 500)) {
    std::fprintf(stderr, "fedproxy reload: unexpected answer from %s: HTTP %d\n", admin->text.c_str(), reply.status);
    return kExitUnreachable;
  }
  std::string result = field("result");
  if (result.empty()) result = reply.status == 200 ? "ok" : "failed";  // a proxy older than "result"
  if (result == "ok") {
    if (!opts.has("--json")) std::printf("reloaded\n");
    return 0;
  }
  if (result == "restart_required") {
    std::string keys;
    const auto& o = v.get<picojson::object>();
    if (auto it = o.find("restart_required"); it != o.end() && it->second.is<picojson::array>()) {
      for (const auto& k : it->second.get<picojson::array>()) keys += (keys.empty() ? "" : ", ") + k.to_str();
    }
    std::fprintf(stderr,
                 "fedproxy reload: applied, but a restart is required for: %s (systemctl restart fedproxy)\n",
                 keys.c_str());
    return kExitProblems;
  }
  std::fprintf(stderr, "fedproxy reload: reload failed, the previous configuration keeps serving: %s\n",
               field("error").c_str());
  return kExitProblems;
}

}  // namespace fedproxy::app
