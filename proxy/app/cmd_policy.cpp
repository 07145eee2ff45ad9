// `fedproxy policy explain` (SPEC §12): what fedproxy would do with a request
// that was never sent. Offline it loads the config, certificates and
// manifests exactly as `check` and `run` do and runs core::explain; online
// (--admin) it asks a running fedproxy's GET /v1/explain, which runs the same
// function over the snapshot that serves.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <picojson.h>

#include "config/config.hpp"
#include "proxy/app/admin_client.hpp"
#include "proxy/app/admin_explain.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/core/explain.hpp"
#include "proxy/tls/tls_engine.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::app {

namespace {
constexpr int kExitUnreachable = 3;

const char* kPolicyUsage =
    "Usage: fedproxy policy explain --peer ORG --method M --target T [--grant ID] [--source IP]\n"
    "                               (--config FILE | --admin ADDR [--token-file FILE]) [--timeout-ms N]\n"
    "Says what fedproxy would do with a request from peer ORG (its certificate as its\n"
    "configuration describes it: entity_uri, trust anchors, pinned fingerprint) that was\n"
    "never sent: the decision, its error code and status, the grant and route that decided,\n"
    "and the exact target and headers the app would receive. Prints one JSON object:\n"
    "  {\"decision\": \"allow\"|\"deny\", \"error\": CODE|null, \"status\": N, \"message\": ...,\n"
    "   \"peer\": ..., \"grant\": ..., \"route\": {\"prefix\", \"resource\"}|null,\n"
    "   \"target\": ..., \"headers\": [[name, value], ...], \"shadow\": bool, \"rate_limit\": ...}\n"
    "T is the raw request-target a client would send (\"/api/v1/tasks?limit=10\").\n"
    "--grant ID is sent as \"Authorization: Bearer fg-ID\"; --source is the client's IP\n"
    "(default 127.0.0.1). Rate limits are checked against a full bucket: the live\n"
    "buckets are not simulated and never consumed. The request id, the client's Host\n"
    "and (without a pin) the certificate hash are placeholders.\n"
    "Offline with --config FILE (or $FEDPROXY_CONFIG): no listener, nothing running needed.\n"
    "Online with --admin ADDR (host:port or unix:/path): asks the running fedproxy\n"
    "(GET /v1/explain); the bearer token comes from --token-file, else\n"
    "$FEDPROXY_ADMIN_TOKEN, else the first admin token file of --config.\n"
    "--timeout-ms bounds the online call (default 10000). The output is always JSON\n"
    "(--json is accepted, like every verb that talks to the admin API).\n"
    "Exit codes:\n"
    "  0  allow (forwarded; also a shadow-mode denial, see \"shadow\")\n"
    "  1  deny; or the admin API refused the question (no or wrong token, 4xx)\n"
    "  2  usage error: unknown option, a missing or invalid --peer/--method/--target/\n"
    "     --source, no config and no --admin, a config that does not load\n"
    "  3  online: the running fedproxy could not be reached or gave no explain answer\n";

// RFC 3986 unreserved bytes stay, everything else is %XX.
std::string percent_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string explain_path(const core::ExplainQuery& q) {
  std::string p = "/v1/explain?peer=" + percent_encode(q.peer) + "&method=" + percent_encode(q.method) +
                  "&target=" + percent_encode(q.target);
  if (q.grant) p += "&grant=" + percent_encode(*q.grant);
  p += "&source=" + percent_encode(q.source);
  return p;
}

// The exit code of an explanation's "decision".
int exit_for(bool allow) { return allow ? 0 : kExitProblems; }

int explain_offline(const CommandSpec& spec, const std::string& path, const core::ExplainQuery& q) {
  tls::init_crypto();
  SnapshotResult built = build_snapshot(path);
  if (!built.snapshot) {
    for (const auto& p : built.problems) std::fprintf(stderr, "%s\n", p.c_str());
    return usage_error(spec, "the config does not load (fedproxy check --config " + path + ")");
  }
  if (!built.snapshot->policy) {
    return usage_error(spec, "authenticate_only: there is no peer or grant policy to explain");
  }
  const core::Explanation e = core::explain(explain_setup(*built.snapshot), q, net::Loop::unix_ms());
  std::printf("%s\n", core::explanation_json(e).c_str());
  return exit_for(e.allow);
}

int explain_online(const CommandSpec& spec, const ParsedArgs& opts, const core::ExplainQuery& q) {
  std::string error;
  int timeout_ms = 10000;
  if (auto t = opts.value("--timeout-ms")) {
    char* end = nullptr;
    long v = std::strtol(t->c_str(), &end, 10);
    if (!end || *end || v <= 0 || v > 3600000) return usage_error(spec, "--timeout-ms needs a number of milliseconds");
    timeout_ms = static_cast<int>(v);
  }
  // --admin names the listener; the config, when given, only the token file.
  std::optional<AdminTarget> target = resolve_admin_target(opts, &error);
  if (!target) return usage_error(spec, error);
  const config::Endpoint* admin = &target->endpoint;
  const std::string& token = target->token;
  AdminReply reply = admin_call(*admin, "GET", explain_path(q), token, timeout_ms);
  if (!reply.reached) {
    std::fprintf(stderr, "fedproxy policy explain: %s\n", reply.error.c_str());
    return kExitUnreachable;
  }
  picojson::value v;
  const bool is_object = picojson::parse(v, reply.body).empty() && v.is<picojson::object>();
  if (reply.status >= 400 && reply.status < 500) {
    std::string code = is_object && v.get("error").is<std::string>() ? v.get("error").get<std::string>() : "";
    std::string message = is_object && v.get("message").is<std::string>() ? v.get("message").get<std::string>() : "";
    std::fprintf(stderr, "fedproxy policy explain: refused by %s: HTTP %d %s: %s\n", admin->text.c_str(),
                 reply.status, code.c_str(), message.c_str());
    return kExitProblems;
  }
  if (reply.status != 200 || !is_object || !v.get("decision").is<std::string>()) {
    std::fprintf(stderr, "fedproxy policy explain: unexpected answer from %s: HTTP %d\n", admin->text.c_str(),
                 reply.status);
    return kExitUnreachable;
  }
  std::fputs(reply.body.c_str(), stdout);
  return exit_for(v.get("decision").get<std::string>() == "allow");
}
}  // namespace

int cmd_policy(const std::vector<std::string>& args) {
  static const CommandSpec spec{"policy explain",
                                kPolicyUsage,
                                {{"--config", true, "-c"},
                                 {"--peer", true},
                                 {"--method", true},
                                 {"--target", true},
                                 {"--grant", true},
                                 {"--source", true},
                                 {"--admin", true},
                                 {"--token-file", true},
                                 {"--timeout-ms", true},
                                 {"--json"}},
                                1,
                                1};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  if (opts.positional()[0] != "explain") return usage_error(spec, "unknown subcommand '" + opts.positional()[0] + "'");
  core::ExplainQuery q;
  for (const char* required : {"--peer", "--method", "--target"}) {
    if (!opts.has(required)) return usage_error(spec, std::string(required) + " is required");
  }
  q.peer = *opts.value("--peer");
  q.method = *opts.value("--method");
  q.target = *opts.value("--target");
  q.grant = opts.value("--grant");
  if (auto s = opts.value("--source")) q.source = *s;
  if (auto problem = core::explain_query_problem(q)) return usage_error(spec, *problem);
  if (opts.has("--admin")) return explain_online(spec, opts, q);
  std::string error;
  std::string path = config_path(opts, &error);
  if (path.empty()) return usage_error(spec, "no config and no --admin: pass --config FILE (offline) or --admin ADDR");
  return explain_offline(spec, path, q);
}

}  // namespace fedproxy::app
