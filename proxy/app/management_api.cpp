#include "proxy/app/management_api.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <picojson.h>

#include "config/etag.hpp"
#include "config/merge_patch.hpp"
#include "config/state.hpp"
#include "config/state_file.hpp"
#include "proxy/app/effective_config.hpp"
#include "proxy/app/log.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::app {

namespace {

using config::Kind;
using picojson::array;
using picojson::object;
using picojson::value;

constexpr std::string_view kPrefix = "/v1/";

struct Target {
  Kind kind = Kind::peer;
  std::string key;  // "" = the collection
};

std::optional<Target> parse_target(std::string_view path) {
  if (!path.starts_with(kPrefix)) return std::nullopt;
  path.remove_prefix(kPrefix.size());
  for (Kind kind : {Kind::peer, Kind::grant}) {
    const std::string_view name = config::array_name(kind);
    if (!path.starts_with(name)) continue;
    std::string_view rest = path.substr(name.size());
    if (rest.empty()) return Target{kind, ""};
    if (rest.front() != '/') return std::nullopt;
    rest.remove_prefix(1);
    if (rest.empty() || rest.find('/') != std::string_view::npos) return std::nullopt;
    return Target{kind, std::string(rest)};
  }
  return std::nullopt;
}

struct Field {
  std::string field, message;
};

core::AdminResponse invalid(const std::vector<Field>& fields, std::string message) {
  core::AdminResponse r = core::AdminResponse::error(422, "invalid", std::move(message));
  array list;
  for (const auto& f : fields) {
    object o;
    o["field"] = value(f.field);
    o["message"] = value(f.message);
    list.emplace_back(std::move(o));
  }
  r.error_fields_json = value(std::move(list)).serialize();
  return r;
}

core::AdminResponse object_response(int status, const value& v, std::string extra_headers = {}) {
  core::AdminResponse r;
  r.status = status;
  r.body = v.serialize() + "\n";
  r.extra_headers = "ETag: " + config::etag(v) + "\r\n" + extra_headers;
  return r;
}

std::string location(Kind kind, const std::string& key) {
  return std::string(kPrefix) + config::array_name(kind) + "/" + key;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-Match (RFC 9110 §13.1.1): "*" or a list of entity tags, one of which
// must be the object's current one. Absent: unconditional.
bool if_match_holds(const http1::Headers& headers, const value& current) {
  const http1::Header* h = http1::find_header(headers, "if-match");
  if (!h) return true;
  const std::string tag = config::etag(current);
  std::string_view list = h->value;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view one = trim(list.substr(0, comma));
    if (one == "*" || one == tag) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// build_snapshot's problems ("<file>: <where>: <message>") as API fields:
// inside the changed object relative to it ("resources"), else the full
// location ("grants[0].resources", or the file for a problem elsewhere).
std::vector<Field> locate(const std::vector<std::string>& problems, const std::string& config_path,
                          const std::string& object_where) {
  std::vector<Field> fields;
  const std::string file_prefix = config_path + ": ";
  for (const auto& p : problems) {
    if (!p.starts_with(file_prefix)) {
      const size_t colon = p.find(": ");
      fields.push_back(colon == std::string::npos ? Field{"", p} : Field{p.substr(0, colon), p.substr(colon + 2)});
      continue;
    }
    const std::string rest = p.substr(file_prefix.size());
    const size_t colon = rest.find(": ");
    std::string where = colon == std::string::npos ? "" : rest.substr(0, colon);
    std::string message = colon == std::string::npos ? rest : rest.substr(colon + 2);
    if (where == object_where) {
      where = "(object)";
    } else if (where.starts_with(object_where + ".")) {
      where = where.substr(object_where.size() + 1);
    }
    fields.push_back({std::move(where), std::move(message)});
  }
  return fields;
}

}  // namespace

bool ManagementApi::handles(std::string_view path) { return parse_target(path).has_value(); }

core::AdminResponse ManagementApi::handle(const core::AdminRequest& req) {
  const std::optional<Target> target = parse_target(req.path);
  if (!target) return core::AdminResponse::error(404, "not_found", "No such management API resource.");
  const Kind kind = target->kind;
  const char* noun = config::to_string(kind);

  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  if (!eff.has_root) {
    return core::AdminResponse::error(500, "config_unreadable",
                                      "The config file cannot be read as it is now: " +
                                          (eff.result.problems.empty() ? std::string("unknown problem")
                                                                       : eff.result.problems.front().to_string()));
  }
  const bool reading = req.method == "GET" || req.method == "HEAD";

  if (target->key.empty()) {
    if (reading) {
      array list;
      auto it = eff.root.find(config::array_name(kind));
      if (it != eff.root.end() && it->second.is<array>()) {
        for (const value& v : it->second.get<array>()) {
          value item = v;
          if (item.is<object>()) item.get<object>()["etag"] = value(config::etag(v));
          list.push_back(std::move(item));
        }
      }
      object body;
      body[config::array_name(kind)] = value(std::move(list));
      core::AdminResponse r;
      r.body = value(std::move(body)).serialize() + "\n";
      return r;
    }
    if (req.method != "POST") {
      return core::AdminResponse::error(405, "method_not_allowed", "Use GET or POST.", "Allow: GET, HEAD, POST\r\n");
    }
  } else if (!reading && req.method != "PATCH" && req.method != "DELETE") {
    return core::AdminResponse::error(405, "method_not_allowed", "Use GET, PATCH or DELETE.",
                                      "Allow: GET, HEAD, PATCH, DELETE\r\n");
  }

  const config::Found found = target->key.empty() ? config::Found{} : config::find_object(eff.root, kind, target->key);
  if (reading) {
    if (!found.object) return core::AdminResponse::error(404, "not_found", std::string("No ") + noun + " " + target->key + ".");
    return object_response(200, *found.object);
  }

  // A change: needs a body (POST, PATCH) and somewhere to keep it.
  value body;
  if (req.method != "DELETE") {
    std::string error;
    picojson::parse(body, req.body.begin(), req.body.end(), &error);
    if (!error.empty()) return core::AdminResponse::error(400, "bad_request", "The request body is not JSON: " + error);
  }
  if (eff.state_path.empty()) {
    return core::AdminResponse::error(409, "conflict",
                                      "state.path is not configured: changes made through the API could not be kept.");
  }

  std::string key = target->key;
  std::optional<value> before;
  value after;
  std::string action;
  if (req.method == "POST") {
    action = "create";
    if (!body.is<object>()) return invalid({{"(object)", std::string("a ") + noun + " is a JSON object"}}, "The body is not an object.");
    key = config::key_of(kind, body);
    if (key.empty()) {
      return invalid({{config::key_name(kind), "required: a non-empty string"}},
                     std::string("The ") + noun + " has no " + config::key_name(kind) + ".");
    }
    if (config::find_object(eff.root, kind, key).object) {
      return core::AdminResponse::error(409, "conflict", std::string("A ") + noun + " " + key + " exists already.");
    }
    if (kind == Kind::peer) {
      const auto& o = body.get<object>();
      auto uri = o.find("entity_uri");
      if (uri != o.end() && uri->second.is<std::string>()) {
        const std::string& want = uri->second.get<std::string>();
        bool taken = false;
        if (auto snap = hooks_.current(); snap && snap->policy) {
          for (const auto& p : snap->policy->peers()) taken = taken || p.entity_uri == want;
        }
        for (const value& v : eff.root["peers"].is<array>() ? eff.root["peers"].get<array>() : array{}) {
          if (v.is<object>() && v.contains("entity_uri") && v.get("entity_uri").is<std::string>()) {
            taken = taken || v.get("entity_uri").get<std::string>() == want;
          }
        }
        if (taken) return core::AdminResponse::error(409, "conflict", "Another peer has entity_uri " + want + ".");
      }
    }
    after = body;
  } else {
    if (!found.object) return core::AdminResponse::error(404, "not_found", std::string("No ") + noun + " " + key + ".");
    if (!if_match_holds(req.headers, *found.object)) {
      return core::AdminResponse::error(412, "precondition_failed",
                                        std::string("The ") + noun + " changed since that ETag (If-Match).");
    }
    before = *found.object;
    if (req.method == "PATCH") {
      action = "update";
      after = config::merge_patch(*found.object, body);
      if (!after.is<object>()) return invalid({{"(object)", std::string("a ") + noun + " is a JSON object"}}, "The patch replaces the object.");
      if (config::key_of(kind, after) != key) {
        return invalid({{config::key_name(kind), "cannot be changed"}}, std::string("The ") + config::key_name(kind) + " of a " + noun + " cannot be changed.");
      }
    } else {
      action = "revoke";
      after = *found.object;
      if (kind == Kind::peer) {
        after.get<object>()["trust_level"] = value("none");
      } else {
        after.get<object>()["status"] = value("revoked");
      }
    }
  }

  // Validate the candidate exactly as check and run load it.
  config::State candidate = eff.state;
  candidate.put(kind, after);
  const std::map<std::string, std::string> crls = hooks_.fetched_crls ? hooks_.fetched_crls() : std::map<std::string, std::string>{};
  SnapshotResult built = build_snapshot(config_path_, false, {.state_override = &candidate, .fetched_crls = &crls});
  if (!built.snapshot) {
    object candidate_root = eff.root;
    config::overlay(candidate_root, candidate);
    const size_t index = config::find_object(candidate_root, kind, key).index;
    const std::string where = std::string(config::array_name(kind)) + "[" + std::to_string(index) + "]";
    return invalid(locate(built.problems, config_path_, where),
                   std::string("The ") + noun + " does not validate (as fedproxy check would say).");
  }
  if (auto written = config::write_state_file(eff.state_path, candidate); !written) {
    LogLine("error", "state file write failed").str("error", base::to_string(written.error()));
    return core::AdminResponse::error(500, "state_write_failed",
                                      "The change was not applied: " + base::to_string(written.error()));
  }
  std::shared_ptr<const Snapshot> next = std::move(built.snapshot);
  if (kind == Kind::grant) {
    // Grants never touch the trust store: keep the TLS contexts serving now
    // (and their session-ticket keys, so clients keep resuming).
    auto current = hooks_.current();
    if (current && current->server_tls && next->server_tls) {
      auto same_tls = std::make_shared<Snapshot>(*next);
      same_tls->server_tls = current->server_tls;
      same_tls->client_tls = current->client_tls;
      next = std::move(same_tls);
    }
  }
  hooks_.apply(std::move(next));

  const std::string before_digest = before ? config::object_digest(*before) : "null";
  const std::string after_digest = config::object_digest(after);
  const std::string actor = req.actor.empty() ? "anonymous" : std::string(req.actor);
  LogLine("info", "management change")
      .str("actor", actor)
      .str("action", action)
      .str("kind", noun)
      .str("key", key)
      .str("request_id", req.request_id);
  hooks_.audit("config.changed", {{"actor", actor},
                                  {"action", action},
                                  {"kind", noun},
                                  {"key", key},
                                  {"before_sha256", before_digest},
                                  {"after_sha256", after_digest},
                                  {"request_id", std::string(req.request_id)}});
  if (action == "create") return object_response(201, after, "Location: " + location(kind, key) + "\r\n");
  return object_response(200, after);
}

}  // namespace fedproxy::app
