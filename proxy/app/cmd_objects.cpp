// `fedproxy peers ...` and `fedproxy grants ...`: the management API
// (SPEC §12) from the shell, over the one admin client (admin_client.hpp),
// with the conventions of `fedproxy reload` (--admin, --config,
// --token-file, $FEDPROXY_ADMIN_TOKEN, --json; exit 0/1/2/3).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <picojson.h>

#include "proxy/app/admin_client.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"

namespace fedproxy::app {

namespace {

struct Noun {
  const char* plural;  // "peers"
  const char* single;  // "peer"
  const char* key;     // "ORG"
  const char* revoke;  // what revoke does
  const char* columns[2];  // list columns after the key
};
const Noun kPeers{"peers", "peer", "ORG", "sets trust_level to none (kept, audited)", {"trust_level", "entity_uri"}};
const Noun kGrants{"grants", "grant", "ID", "sets status to revoked (kept, audited)", {"peer", "status"}};

std::string usage(const Noun& n) {
  const std::string p = n.plural, k = n.key;
  return "Usage: fedproxy " + p + " list|add|set|revoke [ARGS] [--admin ADDR] [--config FILE] [--token-file FILE] [--json]\n"
         "  fedproxy " + p + " list                     every " + n.single + " with its etag\n"
         "  fedproxy " + p + " add JSON|-|--file F      create one (POST /v1/" + p + ")\n"
         "  fedproxy " + p + " set " + k + " PATCH|-|--file F [--if-match ETAG]\n"
         "                                         change one with a JSON merge patch (RFC 7396)\n"
         "  fedproxy " + p + " revoke " + k + " [--if-match ETAG]\n"
         "                                         " + n.revoke + "\n"
         "JSON is given inline, as - (stdin) or with --file F. ADDR (host:port or unix:/path)\n"
         "defaults to admin.listen of the config; the token comes from --token-file, else\n"
         "$FEDPROXY_ADMIN_TOKEN, else the config's admin token file. --json prints the answer as is.\n"
         "Exit codes: 0 done; 1 refused (401, 404, 409, 412, 422, ...: the reason on stderr);\n"
         "2 usage error; 3 the running fedproxy could not be reached.\n"
         "FILE may also come from $FEDPROXY_CONFIG.\n";
}

std::optional<std::string> read_json_arg(const ParsedArgs& opts, size_t index, std::string* error) {
  if (auto f = opts.value("--file")) {
    if (opts.positional().size() > index) {
      *error = "give the JSON either inline or with --file, not both";
      return std::nullopt;
    }
    std::FILE* in = std::fopen(f->c_str(), "rb");
    if (!in) {
      *error = "cannot read " + *f;
      return std::nullopt;
    }
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
    std::fclose(in);
    return text;
  }
  if (opts.positional().size() <= index) {
    *error = "missing the JSON (inline, - for stdin, or --file F)";
    return std::nullopt;
  }
  const std::string& arg = opts.positional()[index];
  if (arg == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  return arg;
}

int run_verb(const Noun& n, const std::vector<std::string>& args) {
  const std::string usage_text = usage(n);
  const std::string name = std::string(n.plural) + (args.empty() ? "" : " " + args[0]);
  CommandSpec spec{name,
                   usage_text,
                   {{"--config", true, "-c"}, {"--admin", true}, {"--token-file", true}, {"--json"},
                    {"--file", true, "-f"}, {"--if-match", true}},
                   1,
                   3};
  ParsedArgs opts;
  if (auto done = parse_args(spec, args, &opts)) return *done;
  const std::vector<std::string>& pos = opts.positional();
  const std::string verb = pos[0];
  const std::string collection = std::string("/v1/") + n.plural;
  std::string method, path, body, error;
  if (verb == "list") {
    if (pos.size() != 1) return usage_error(spec, "list takes no argument");
    method = "GET";
    path = collection;
  } else if (verb == "add") {
    if (pos.size() > 2) return usage_error(spec, "add takes one JSON object");
    auto json = read_json_arg(opts, 1, &error);
    if (!json) return usage_error(spec, error);
    method = "POST";
    path = collection;
    body = *json;
  } else if (verb == "set" || verb == "revoke") {
    if (pos.size() < 2) return usage_error(spec, verb + " needs the " + n.single + "'s " + n.key);
    path = collection + "/" + pos[1];
    if (verb == "set") {
      auto json = read_json_arg(opts, 2, &error);
      if (!json) return usage_error(spec, error);
      method = "PATCH";
      body = *json;
    } else {
      if (pos.size() > 2) return usage_error(spec, "revoke takes one " + std::string(n.key));
      method = "DELETE";
    }
  } else {
    return usage_error(spec, "unknown verb '" + verb + "' (list, add, set, revoke)");
  }
  if (verb != "set" && verb != "revoke" && opts.has("--if-match")) {
    return usage_error(spec, "--if-match applies to set and revoke");
  }
  if (!body.empty()) {
    picojson::value check;
    if (!picojson::parse(check, body).empty()) return usage_error(spec, "the JSON does not parse");
  }
  std::optional<AdminTarget> target = resolve_admin_target(opts, &error);
  if (!target) return usage_error(spec, error);
  std::string headers;
  if (auto tag = opts.value("--if-match")) headers = "If-Match: " + *tag + "\r\n";

  VerbAnswer answer = call_admin_verb(name, *target, method, path, body, headers, opts.has("--json"));
  if (answer.exit_code >= 0) return answer.exit_code;
  const AdminReply& reply = answer.reply;
  const picojson::value& v = answer.json;
  if (opts.has("--json")) {
    std::fputs(reply.body.c_str(), stdout);
    return 0;
  }
  if (verb == "list") {
    const std::string key = n.single == std::string("peer") ? "org" : "id";
    if (v.contains(n.plural) && v.get(n.plural).is<picojson::array>()) {
      for (const auto& item : v.get(n.plural).get<picojson::array>()) {
        std::printf("%s\t%s\t%s\t%s\n", json_field(item, key).c_str(), json_field(item, n.columns[0]).c_str(),
                    json_field(item, n.columns[1]).c_str(), json_field(item, "etag").c_str());
      }
    }
    return 0;
  }
  const char* done = verb == "add" ? "created" : verb == "set" ? "changed" : "revoked";
  const std::string key = verb == "add" ? json_field(v, n.single == std::string("peer") ? "org" : "id") : pos[1];
  std::printf("%s %s %s (etag %s)\n", done, n.single, key.c_str(), reply_header(reply, "etag").c_str());
  return 0;
}

}  // namespace

int cmd_peers(const std::vector<std::string>& args) { return run_verb(kPeers, args); }
int cmd_grants(const std::vector<std::string>& args) { return run_verb(kGrants, args); }

}  // namespace fedproxy::app
