#include "proxy/app/join_service.hpp"

#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>

#include <picojson.h>

#include "config/join_token.hpp"
#include "config/state_file.hpp"
#include "certwatch/trust_anchors.hpp"
#include "config/manifest.hpp"
#include "proxy/app/effective_config.hpp"
#include "proxy/app/join_client.hpp"
#include "proxy/app/log.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::app {

namespace {

using picojson::array;
using picojson::object;
using picojson::value;

constexpr int64_t kDefaultTtlS = 900;
constexpr int64_t kMaxTtlS = 7 * 86400;

int64_t now_s() { return static_cast<int64_t>(std::time(nullptr)); }
core::AdminResponse json_response(int status, const value& v) {
  core::AdminResponse r;
  r.status = status;
  r.body = v.serialize() + "\n";
  return r;
}

const std::string* string_member(const value& v, const char* name) {
  if (!v.is<object>()) return nullptr;
  const auto& o = v.get<object>();
  auto it = o.find(name);
  return it != o.end() && it->second.is<std::string>() ? &it->second.get<std::string>() : nullptr;
}

// The address without its port: what the attempt limiter counts.
std::string source_host(std::string_view peer) {
  const size_t colon = peer.rfind(':');
  std::string host(colon == std::string_view::npos ? peer : peer.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

value own_manifest(const Snapshot& snap) {
  object m;
  m["org"] = value(snap.config.node.org);
  m["entity_uri"] = value(snap.config.node.entity_uri);
  array endpoints;
  for (const auto& e : snap.config.node.endpoints) endpoints.emplace_back(e);
  m["endpoints"] = value(std::move(endpoints));
  return value(std::move(m));
}

std::string own_anchors_pem(const Snapshot& snap) {
  return snap.server_tls ? certwatch::trust_anchors_to_pem(snap.node_anchors) : std::string();
}

// A manifest as sent in a join: checked as a manifest file would be (slug
// rules, URI, endpoints), and its endpoints must be an array.
std::optional<std::string> manifest_problem(const value& m) {
  if (!m.is<object>()) return "manifest must be an object";
  config::ManifestResult parsed = config::parse_manifest(m.serialize(), "manifest");
  if (!parsed.problems.empty()) return parsed.problems.front().to_string();
  if (!m.get("endpoints").is<array>()) return "manifest.endpoints must be an array of strings";
  return std::nullopt;
}

int64_t int_member(const value& v, const char* name, int64_t fallback) {
  return v.is<object>() && v.contains(name) && v.get(name).is<int64_t>() ? v.get(name).get<int64_t>() : fallback;
}

}  // namespace

// The peering listener's handler: everything goes to the JoinService.
class PeeringHandler final : public core::AdminHandler {
 public:
  explicit PeeringHandler(JoinService& service) : service_(service) {}
  const core::AdminAccess& admin_access() const override { return access_; }
  core::AdminResponse handle_admin(const core::AdminRequest& request) override {
    return service_.handle_peering(request);
  }
  void admin_refused(const core::AdminRequest&, const core::AdminVerdict&) override {}

 private:
  JoinService& service_;
  core::AdminAccess access_;
};

JoinService::JoinService(net::Loop& loop, std::string config_path, ManagementApi::Hooks hooks)
    : loop_(loop), config_path_(std::move(config_path)), hooks_(std::move(hooks)),
      peering_(std::make_unique<PeeringHandler>(*this)), wakeup_(loop, [this] { finished_joins(); }) {
  wakeup_.unref();
}

JoinService::~JoinService() {
  for (auto& t : threads_) t.join();
}

bool JoinService::handles(std::string_view path) { return path == "/v1/invites" || path == "/v1/joins"; }

core::AdminResponse JoinService::handle_admin(const core::AdminRequest& req) {
  const bool invites = req.path == "/v1/invites";
  if (invites && (req.method == "GET" || req.method == "HEAD")) return list_invites();
  if (req.method != "POST") {
    return invites ? core::AdminResponse::error(405, "method_not_allowed", "Use GET or POST.", "Allow: GET, HEAD, POST\r\n")
                   : core::AdminResponse::error(405, "method_not_allowed", "Use POST.", "Allow: POST\r\n");
  }
  return invites ? create_invite(req) : start_join(req);
}

// The invites as kept (the secret's digest is kept back too: it is of use to
// nobody but the peering listener).
core::AdminResponse JoinService::list_invites() const {
  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  array list;
  for (const auto& inv : eff.state.invites) {
    if (!inv.is<object>()) continue;
    object shown = inv.get<object>();
    shown.erase("secret_sha256");
    shown["state"] = value(shown.count("used_at") ? "used" : int_member(inv, "expires_at", 0) <= now_s() ? "expired" : "open");
    list.emplace_back(std::move(shown));
  }
  object out;
  out["invites"] = value(std::move(list));
  return json_response(200, value(std::move(out)));
}

std::set<std::string> JoinService::joined_orgs() const {
  std::set<std::string> orgs;
  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  for (const auto& j : eff.state.joins) {
    if (const std::string* org = string_member(j, "org")) orgs.insert(*org);
  }
  return orgs;
}

namespace {

// The management API's path for a change made here: validate the candidate
// as check would, persist it, apply it by the snapshot swap.
core::AdminResponse commit(const std::string& config_path, const EffectiveConfig& eff, const config::State& candidate,
                           const ManagementApi::Hooks& hooks) {
  const std::map<std::string, std::string> crls = hooks.fetched_crls ? hooks.fetched_crls() : std::map<std::string, std::string>{};
  SnapshotResult built = build_snapshot(config_path, false, {.state_override = &candidate, .fetched_crls = &crls});
  if (!built.snapshot) {
    std::string first = built.problems.empty() ? std::string("unknown problem") : built.problems.front();
    return core::AdminResponse::error(422, "invalid", "The result does not validate: " + first);
  }
  if (auto written = config::write_state_file(eff.state_path, candidate); !written) {
    return core::AdminResponse::error(500, "state_write_failed",
                                      "The change was not applied: " + base::to_string(written.error()));
  }
  hooks.apply(std::move(built.snapshot));
  return {};
}

// The other side as a peer: its manifest inline, its CA bundle written
// beside the state file as the peer's own anchors, and a `joins` record.
base::Status put_peer(const EffectiveConfig& eff, config::State& candidate, const value& manifest,
                      const std::string& ca_pem, object* stored) {
  const std::string org = *string_member(manifest, "org");
  const std::filesystem::path dir = std::filesystem::path(eff.state_path).parent_path();
  const std::string ca_path = (dir / ("peer-" + org + "-ca.pem")).string();
  if (auto w = config::write_file_atomically(ca_path, ca_pem); !w) return w;
  object peer;
  peer["org"] = value(org);
  peer["entity_uri"] = manifest.get("entity_uri");
  peer["endpoints"] = manifest.get("endpoints");
  peer["ca_bundle"] = value(ca_path);
  // Its anchors stay current from its trust bundle (peer_bundles.hpp): a CA
  // rotation on its side needs nothing from us.
  peer["refresh_bundle"] = value(true);
  candidate.put(config::Kind::peer, value(peer));
  object join;
  join["org"] = value(org);
  join["joined_at"] = value(now_s());
  bool replaced = false;
  for (auto& j : candidate.joins) {
    if (string_member(j, "org") && *string_member(j, "org") == org) {
      j = value(join);
      replaced = true;
    }
  }
  if (!replaced) candidate.joins.emplace_back(std::move(join));
  *stored = std::move(peer);
  return base::ok_status();
}

}  // namespace

core::AdminResponse JoinService::create_invite(const core::AdminRequest& req) {
  value body;
  if (const std::string err = picojson::parse(body, std::string(req.body)); !err.empty() || !body.is<object>()) {
    return core::AdminResponse::error(400, "bad_request", "The request body is not a JSON object.");
  }
  const std::string* org = string_member(body, "org");
  if (!org || org->empty()) return core::AdminResponse::error(422, "invalid", "org is required.");
  const int64_t ttl = int_member(body, "ttl_s", kDefaultTtlS);
  if (ttl < 1 || ttl > kMaxTtlS) return core::AdminResponse::error(422, "invalid", "ttl_s must be 1..604800.");
  const value grant = body.contains("grant") ? body.get("grant") : value();
  if (!grant.is<picojson::null>() && !grant.is<object>()) {
    return core::AdminResponse::error(422, "invalid", "grant must be an object.");
  }
  auto snap = hooks_.current();
  if (!snap || !snap->server_tls) return core::AdminResponse::error(409, "conflict", "Joining needs TLS (not insecure mode).");
  if (*org == snap->config.node.org) return core::AdminResponse::error(422, "invalid", "A node cannot invite itself.");
  // What the token pins: the node's trust bundle (node.ca_bundle, else the
  // CA of tls.ca_bundle that issued the node certificate), its first CA.
  const std::vector<certwatch::TrustAnchor>& anchors = snap->node_anchors;
  if (anchors.empty()) {
    return core::AdminResponse::error(409, "conflict",
                                      "This node has no trust bundle (no CA of tls.ca_bundle issued the node "
                                      "certificate; set node.ca_bundle): nothing to pin.");
  }
  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  if (eff.state_path.empty()) {
    return core::AdminResponse::error(409, "conflict", "state.path is not configured: an invite could not be kept.");
  }
  auto token = config::new_join_token(anchors.front().der_sha256);
  if (!token) return core::AdminResponse::error(500, "internal", "No random bytes for the token.");
  const int64_t expires_at = now_s() + ttl;
  object invite;
  invite["id"] = value(token->id);
  invite["org"] = value(*org);
  invite["secret_sha256"] = value(config::secret_digest(token->secret));
  invite["expires_at"] = value(expires_at);
  if (grant.is<object>()) invite["grant"] = grant;
  config::State candidate = eff.state;
  candidate.invites.emplace_back(invite);
  object pending;
  pending["org"] = value(*org);
  pending["invited_at"] = value(now_s());
  bool known = false;
  for (const auto& j : candidate.joins) known = known || (string_member(j, "org") && *string_member(j, "org") == *org);
  if (!known) candidate.joins.emplace_back(std::move(pending));
  if (auto written = config::write_state_file(eff.state_path, candidate); !written) {
    return core::AdminResponse::error(500, "state_write_failed", "The invite was not kept: " + base::to_string(written.error()));
  }
  const std::string actor = req.actor.empty() ? "anonymous" : std::string(req.actor);
  hooks_.audit("peer.invited", {{"actor", actor},
                                {"org", *org},
                                {"invite_id", token->id},
                                {"expires_at", std::to_string(expires_at)},
                                {"grant", grant.is<object>() ? "yes" : "no"},
                                {"request_id", std::string(req.request_id)}});
  LogLine("info", "peer invited").str("actor", actor).str("org", *org).str("invite_id", token->id);
  object out;
  out["token"] = value(config::format_join_token(*token));
  out["invite_id"] = value(token->id);
  out["org"] = value(*org);
  out["expires_at"] = value(expires_at);
  return json_response(201, value(std::move(out)));
}

core::AdminResponse JoinService::handle_peering(const core::AdminRequest& req) {
  if (req.path == "/v1/join/ca") {
    if (req.method != "GET" && req.method != "HEAD") {
      return core::AdminResponse::error(405, "method_not_allowed", "Use GET.", "Allow: GET\r\n");
    }
    return serve_ca();
  }
  if (req.path == "/v1/join") {
    if (req.method != "POST") return core::AdminResponse::error(405, "method_not_allowed", "Use POST.", "Allow: POST\r\n");
    return accept_join(req);
  }
  return core::AdminResponse::error(404, "not_found", "The peering listener serves /v1/join/ca and /v1/join only.");
}

core::AdminResponse JoinService::serve_ca() {
  auto snap = hooks_.current();
  const std::string pem = snap ? own_anchors_pem(*snap) : std::string();
  if (pem.empty()) return core::AdminResponse::error(503, "unavailable", "No CA issued the node certificate.");
  object out;
  out["ca_bundle"] = value(pem);
  return json_response(200, value(std::move(out)));
}

core::AdminResponse JoinService::accept_join(const core::AdminRequest& req) {
  const std::string source = source_host(req.peer);
  std::string org_seen = "";
  std::string invite_id = "";
  auto audit = [&](const char* outcome) {
    hooks_.audit("peer.join_attempt", {{"outcome", outcome},
                                       {"org", org_seen},
                                       {"invite_id", invite_id},
                                       {"source", source},
                                       {"request_id", std::string(req.request_id)}});
    LogLine("info", "join attempt").str("outcome", outcome).str("org", org_seen).str("source", source);
  };
  const int64_t now = net::Loop::unix_ms();
  if (const int64_t wait = limiter_.retry_after_ms(source, now); wait > 0) {
    audit("rate_limited");
    return core::AdminResponse::error(429, "rate_limited", "Too many failed join attempts from this address.",
                                      "Retry-After: " + std::to_string((wait + 999) / 1000) + "\r\n");
  }
  value body;
  if (req.body.size() > kMaxJoinBodyBytes || !picojson::parse(body, std::string(req.body)).empty() ||
      !body.is<object>()) {
    limiter_.record_failure(source, now);
    audit("bad_request");
    return core::AdminResponse::error(400, "bad_request", "The join request is not a JSON object.");
  }
  const std::string* id = string_member(body, "token_id");
  const std::string* secret = string_member(body, "secret");
  const std::string* ca_pem = string_member(body, "ca_bundle");
  const value manifest = body.contains("manifest") ? body.get("manifest") : value();
  if (id) invite_id = *id;
  if (!id || !secret || !ca_pem) {
    limiter_.record_failure(source, now);
    audit("invalid");
    return core::AdminResponse::error(422, "invalid", "token_id, secret and ca_bundle are required strings.");
  }

  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  value* invite = nullptr;
  config::State candidate = eff.state;
  for (auto& inv : candidate.invites) {
    if (string_member(inv, "id") && *string_member(inv, "id") == *id) invite = &inv;
  }
  // Unknown id and wrong secret look the same to the caller.
  const std::string* stored = invite ? string_member(*invite, "secret_sha256") : nullptr;
  if (!invite || !stored || !config::digests_equal(*stored, config::secret_digest(*secret))) {
    limiter_.record_failure(source, now);
    audit("unauthorized");
    return core::AdminResponse::error(401, "unauthorized", "Unknown token or wrong secret.");
  }
  org_seen = *string_member(*invite, "org");
  if (invite->contains("used_at")) {
    audit("used");
    return core::AdminResponse::error(410, "gone", "This join token was used already.");
  }
  if (int_member(*invite, "expires_at", 0) <= now_s()) {
    audit("expired");
    return core::AdminResponse::error(410, "gone", "This join token has expired.");
  }
  if (auto problem = manifest_problem(manifest)) {
    audit("invalid");
    return core::AdminResponse::error(422, "invalid", *problem + ".");
  }
  if (*string_member(manifest, "org") != org_seen) {
    audit("org_mismatch");
    return core::AdminResponse::error(422, "invalid", "The manifest's org is not the invited org " + org_seen + ".");
  }

  object peer;
  if (auto put = put_peer(eff, candidate, manifest, *ca_pem, &peer); !put) {
    audit("failed");
    return core::AdminResponse::error(500, "state_write_failed", base::to_string(put.error()));
  }
  if (invite->get("grant").is<object>()) {
    value grant = invite->get("grant");
    auto& g = grant.get<object>();
    if (!g.count("id")) g["id"] = value("join-" + org_seen + "-" + *id);
    g["peer"] = value(org_seen);
    g["status"] = value("active");
    candidate.put(config::Kind::grant, std::move(grant));
  }
  invite->get<object>()["used_at"] = value(now_s());
  core::AdminResponse committed = commit(config_path_, eff, candidate, hooks_);
  if (committed.status != 200 || !committed.error_code.empty()) {
    audit("invalid");
    return committed;
  }
  audit("joined");
  auto snap = hooks_.current();
  object out;
  out["manifest"] = own_manifest(*snap);
  out["ca_bundle"] = value(own_anchors_pem(*snap));
  return json_response(200, value(std::move(out)));
}

core::AdminResponse JoinService::start_join(const core::AdminRequest& req) {
  value body;
  if (const std::string err = picojson::parse(body, std::string(req.body)); !err.empty() || !body.is<object>()) {
    return core::AdminResponse::error(400, "bad_request", "The request body is not a JSON object.");
  }
  const std::string* url = string_member(body, "url");
  const std::string* token_text = string_member(body, "token");
  auto token = token_text ? config::parse_join_token(*token_text) : std::nullopt;
  if (!token) return core::AdminResponse::error(422, "invalid", "token is not a join token (fpj1.<id>.<secret>.<pin>).");
  constexpr std::string_view kScheme = "https://";
  std::string_view rest = url ? std::string_view(*url) : std::string_view();
  if (!rest.starts_with(kScheme)) return core::AdminResponse::error(422, "invalid", "url must be https://HOST:PORT.");
  rest.remove_prefix(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string_view::npos) {
    return core::AdminResponse::error(422, "invalid", "url must be https://HOST:PORT.");
  }
  std::string host(rest.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto snap = hooks_.current();
  if (!snap || !snap->server_tls) return core::AdminResponse::error(409, "conflict", "Joining needs TLS (not insecure mode).");
  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  if (eff.state_path.empty()) {
    return core::AdminResponse::error(409, "conflict", "state.path is not configured: the peer could not be kept.");
  }
  object join;
  join["token_id"] = value(token->id);
  join["secret"] = value(token->secret);
  join["manifest"] = own_manifest(*snap);
  join["ca_bundle"] = value(own_anchors_pem(*snap));
  JoinAttempt attempt{host, std::string(rest.substr(colon + 1)), token->ca_pin, value(std::move(join)).serialize()};
  const std::string actor = req.actor.empty() ? "anonymous" : std::string(req.actor);
  const std::string request_id(req.request_id);
  const std::string target = *url;

  core::AdminResponse later;
  later.later = [this, attempt = std::move(attempt), actor, request_id, target](
                    std::function<void(core::AdminResponse)> answer) mutable {
    threads_.emplace_back([this, attempt = std::move(attempt), actor, request_id, target, answer]() mutable {
      JoinReply reply = perform_join(attempt);
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_.push_back([this, reply = std::move(reply), actor, request_id, target, answer]() {
          answer(finish_join(reply, actor, request_id, target));
        });
      }
      wakeup_.wake();
    });
  };
  return later;
}

void JoinService::finished_joins() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready.swap(done_);
  }
  for (auto& f : ready) f();
}

core::AdminResponse JoinService::finish_join(const JoinReply& reply, const std::string& actor,
                                             const std::string& request_id, const std::string& url) {
  std::string org;
  auto audit = [&](const std::string& outcome) {
    hooks_.audit("peer.join", {{"actor", actor}, {"url", url}, {"outcome", outcome}, {"org", org}, {"request_id", request_id}});
    LogLine("info", "join").str("url", url).str("outcome", outcome).str("org", org);
  };
  if (reply.status == 0) {
    audit(reply.error);
    return core::AdminResponse::error(502, reply.error, reply.message);
  }
  value body;
  const bool json = picojson::parse(body, reply.body).empty() && body.is<object>();
  if (reply.status != 200) {
    // The inviter's refusal, relayed as it came.
    audit(json && string_member(body, "error") ? *string_member(body, "error") : "refused");
    if (json && string_member(body, "error")) {
      const std::string* message = string_member(body, "message");
      return core::AdminResponse::error(reply.status, *string_member(body, "error"),
                                        message ? *message : "The inviter refused the join.");
    }
    return core::AdminResponse::error(502, "peer_unavailable", "The inviter answered " + std::to_string(reply.status) + ".");
  }
  const value manifest = json && body.contains("manifest") ? body.get("manifest") : value();
  const std::string* ca_pem = json ? string_member(body, "ca_bundle") : nullptr;
  if (manifest_problem(manifest) || !ca_pem) {
    audit("bad_reply");
    return core::AdminResponse::error(502, "peer_unavailable", "The inviter's answer is not a manifest and a CA bundle.");
  }
  org = *string_member(manifest, "org");
  EffectiveConfig eff = load_effective_config(config_path_, config::EnvOverrides::from_environment());
  config::State candidate = eff.state;
  object peer;
  if (auto put = put_peer(eff, candidate, manifest, *ca_pem, &peer); !put) {
    audit("failed");
    return core::AdminResponse::error(500, "state_write_failed", base::to_string(put.error()));
  }
  core::AdminResponse committed = commit(config_path_, eff, candidate, hooks_);
  if (!committed.error_code.empty()) {
    audit("invalid");
    return committed;
  }
  audit("joined");
  object out;
  out["peer"] = value(std::move(peer));
  return json_response(201, value(std::move(out)));
}

}  // namespace fedproxy::app
