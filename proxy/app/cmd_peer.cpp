// `fedproxy peer invite ORG` and `fedproxy peer join URL --token T` (SPEC
// §13), over the one admin client with the conventions of `fedproxy peers`
// (--admin, --config, --token-file, $FEDPROXY_ADMIN_TOKEN, --json; exit
// 0/1/2/3). Both ask the running fedproxy: the invite is kept there, and the
// join is made by it (it holds the node certificate and the state).
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <picojson.h>

#include "proxy/app/admin_client.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"

namespace fedproxy::app {

namespace {


const char* kUsage =
    "Usage: fedproxy peer invite ORG [--ttl 15m] [--grant FILE] [--admin ADDR] [--config FILE] [--token-file F] [--json]\n"
    "       fedproxy peer join URL --token T [--admin ADDR] [--config FILE] [--token-file F] [--json]\n"
    "  invite  creates a single-use join token for ORG (printed once, alone on its line);\n"
    "          --ttl: 30s, 15m, 2h (default 15m); --grant FILE: a grant the join activates\n"
    "  join    the running fedproxy joins the inviter at URL (https://HOST:PORT of its\n"
    "          peering.listen) with the token and stores the inviter as a peer\n"
    "Exit codes: 0 done; 1 refused (the reason on stderr); 2 usage error; 3 unreachable.\n";

// "900", "900s", "15m", "2h" → seconds; nullopt when malformed.
std::optional<long> parse_ttl(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || n <= 0) return std::nullopt;
  const std::string unit(end);
  if (unit.empty() || unit == "s") return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  return std::nullopt;
}

std::optional<std::string> read_file(const std::string& path) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) return std::nullopt;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  std::fclose(in);
  return text;
}

}  // namespace

int cmd_peer(const std::vector<std::string>& args) {
  const std::string name = "peer" + (args.empty() ? std::string() : " " + args[0]);
  CommandSpec spec{name,
                   kUsage,
                   {{"--config", true, "-c"}, {"--admin", true}, {"--token-file", true}, {"--json"},
                    {"--ttl", true}, {"--grant", true}, {"--token", true}},
                   2,
                   2};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  const std::string verb = opts.positional()[0];
  picojson::object body;
  std::string path;
  if (verb == "invite") {
    if (opts.has("--token")) return usage_error(spec, "--token applies to join");
    body["org"] = picojson::value(opts.positional()[1]);
    const auto ttl = parse_ttl(opts.value("--ttl").value_or("15m"));
    if (!ttl) return usage_error(spec, "--ttl must look like 30s, 15m or 2h");
    body["ttl_s"] = picojson::value(static_cast<int64_t>(*ttl));
    if (auto file = opts.value("--grant")) {
      auto text = read_file(*file);
      if (!text) return usage_error(spec, "cannot read " + *file);
      picojson::value grant;
      if (!picojson::parse(grant, *text).empty() || !grant.is<picojson::object>()) {
        return usage_error(spec, *file + " is not a JSON object");
      }
      body["grant"] = grant;
    }
    path = "/v1/invites";
  } else if (verb == "join") {
    if (opts.has("--ttl") || opts.has("--grant")) return usage_error(spec, "--ttl and --grant apply to invite");
    auto token = opts.value("--token");
    if (!token) return usage_error(spec, "join needs --token");
    body["url"] = picojson::value(opts.positional()[1]);
    body["token"] = picojson::value(*token);
    path = "/v1/joins";
  } else {
    return usage_error(spec, "unknown verb '" + verb + "' (invite, join)");
  }
  std::string error;
  std::optional<AdminTarget> target = resolve_admin_target(opts, &error);
  if (!target) return usage_error(spec, error);
  VerbAnswer answer = call_admin_verb(name, *target, "POST", path, picojson::value(std::move(body)).serialize(), "",
                                     opts.has("--json"));
  if (answer.exit_code >= 0) return answer.exit_code;
  const picojson::value& v = answer.json;
  if (verb == "invite") {
    if (opts.has("--json")) {
      picojson::object out;
      out["token"] = v.get("token");
      std::printf("%s\n", picojson::value(std::move(out)).serialize().c_str());
    } else {
      std::printf("%s\n", json_field(v, "token").c_str());
    }
    return 0;
  }
  if (opts.has("--json")) {
    std::fputs(answer.reply.body.c_str(), stdout);
  } else {
    const picojson::value peer = v.contains("peer") ? v.get("peer") : picojson::value();
    std::printf("joined: peer %s (%s), pending until its first heartbeat\n", json_field(peer, "org").c_str(),
                json_field(peer, "entity_uri").c_str());
  }
  return 0;
}

}  // namespace fedproxy::app
