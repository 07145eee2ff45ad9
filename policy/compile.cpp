// compile_policy (SPEC §3, §4): validates peers, routes and grants, interns
// resource names, builds the lookup tables and precomputes every header value,
// so that evaluate() only compares and looks up. Every problem is reported
// (not just the first), each with its JSON location and, for grants, the
// grant id in the message.
//
// Choices where the spec is silent (docs/policy.md repeats them):
// - Grant fields `id`, `peer`, `resources` and `status` are required; a grant
//   without a status is refused rather than assumed active.
// - `methods` defaults to ["GET", "HEAD"] (read-only), `max_rows_per_query`
//   to 500, `excluded_resources` and `filters` to empty, `enforce` to true,
//   `approved_sensitive` to false; `rate_limit.burst` defaults to ceil(rps).
// - `source_cidrs`: null or absent = any source; an empty list is refused
//   (it would lock everyone out silently). A bare address is a single host;
//   host bits set below the prefix ("10.0.0.1/8") are refused.
// - Peers: entity_uri, endpoints and the certificate pin may be written
//   inline (peers[i]) or come from the org's manifest; when both give one,
//   they must agree (endpoints compared as sets), else it is a problem.
//   So may trust_domain; it must be the host of a spiffe:// entity_uri.
// - Trust anchors (peers[].ca_bundle, the manifest's trust_bundle) arrive
//   loaded; a peer's anchors are the union of both. A CA that is only some
//   peer's anchor (not in tls.ca_bundle) speaks for that peer alone.
// - A config with peers but no grant (nobody allowed yet) compiles.

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <set>

#include "policy/policy_internal.hpp"
#include "config/uri_chars.hpp"
#include "config/validate.hpp"

namespace fedproxy::policy {

using config::canonicalize_target;
using config::Config;
using config::ConfigProblem;
using config::Grant;
using config::Manifest;
using config::PathPolicy;
using config::PeerConfig;
using config::RouteConfig;
using config::TargetResult;
using config::TargetStatus;
using config::detail::quote;
using config::detail::type_name;
using picojson::array;
using picojson::object;
using picojson::value;

struct CompileAccess {
  static std::shared_ptr<const Snapshot> make(std::unique_ptr<Snapshot::Impl> impl) {
    return std::shared_ptr<const Snapshot>(new Snapshot(std::move(impl)));
  }
};

Snapshot::Snapshot(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Snapshot::~Snapshot() = default;
size_t Snapshot::peer_count() const { return impl_->peers.size(); }
size_t Snapshot::grant_count() const { return impl_->grants.size(); }
const std::vector<std::string>& Snapshot::peer_only_anchor_spki() const { return impl_->peer_only_anchor_spki; }

std::vector<Snapshot::PeerInfo> Snapshot::peers() const {
  std::vector<PeerInfo> out;
  out.reserve(impl_->peers.size());
  for (const PeerEntry& p : impl_->peers) {
    PeerInfo info;
    info.slug = p.slug;
    info.entity_uri = p.entity_uri;
    info.trust = to_string(p.trust);
    info.expires_at = p.expires_at_ms == kNever ? 0 : p.expires_at_ms / 1000;
    info.cert_fingerprint = p.pin;
    info.endpoints = p.endpoints;
    info.trust_anchors = p.anchors;
    info.trust_domain = p.trust_domain;
    out.push_back(std::move(info));
  }
  return out;
}

std::string_view peer_slug(const PeerEntry& p) { return p.slug; }
TrustLevel peer_trust(const PeerEntry& p) { return p.trust; }
std::string_view peer_allowed_regions(const PeerEntry& p) { return p.allowed_regions; }
std::string_view peer_allowed_artifact_types(const PeerEntry& p) { return p.allowed_artifact_types; }
std::string_view peer_entity_uri(const PeerEntry& p) { return p.entity_uri; }
std::string_view grant_id(const GrantEntry& g) { return g.id; }
uint32_t grant_max_rows(const GrantEntry& g) { return g.max_rows; }
std::string_view grant_max_rows_text(const GrantEntry& g) { return g.max_rows_text; }
std::string_view grant_scope_json(const GrantEntry& g) { return g.scope_json; }
std::optional<GrantRateLimit> grant_rate_limit(const GrantEntry& g) {
  if (!g.has_rate_limit) return std::nullopt;
  return GrantRateLimit{g.rps, g.burst};
}

namespace {

std::atomic<uint64_t> g_generation{0};

bool is_builtin_sensitive(std::string_view resource) {
  return resource == "credentials" || resource == "api_keys";
}

std::string string_list_json(const std::vector<std::string>& items) {
  array a;
  for (const auto& s : items) a.emplace_back(s);
  return config::detail::ascii_json(value(a));
}

class Compiler {
 public:
  Compiler(const Config& config, const std::vector<Manifest>& manifests, const PeerAnchors& anchors,
           std::span<const std::string> ca_bundle_spki)
      : config_(config), manifests_(manifests), anchors_(anchors), s_(std::make_unique<Snapshot::Impl>()) {
    s_->peer_only_anchor_spki = policy::peer_only_anchor_spki(anchors, ca_bundle_spki);
  }

  std::vector<ConfigProblem> problems;

  std::unique_ptr<Snapshot::Impl> run() {
    s_->generation = ++g_generation;
    s_->enforce = config_.enforce;
    s_->limit_reject = config_.on_limit == "reject";
    s_->limit_param = config_.limit_param;
    compile_routes();
    compile_peers();
    index_grant_problems();
    for (size_t i = 0; i < config_.grants.size(); ++i) compile_grant(config_.grants[i], i);
    index();
    return std::move(s_);
  }

 private:
  const Config& config_;
  const std::vector<Manifest>& manifests_;
  const PeerAnchors& anchors_;
  std::unique_ptr<Snapshot::Impl> s_;
  std::map<std::string, uint32_t, std::less<>> resource_ids_;
  std::vector<bool> sensitive_;  // by resource id
  std::map<std::string, uint32_t, std::less<>> peer_ids_;
  std::map<std::string, size_t, std::less<>> grant_where_;  // id → index, for duplicates

  void add(std::string where, std::string message) {
    problems.push_back({std::move(where), std::move(message)});
  }

  void compile_routes() {
    // Prefixes are canonicalized like request-targets, so a prefix compares
    // with what requests are canonicalized to; two are equal when equal
    // ASCII case-insensitively, as routes are matched.
    std::map<std::string, size_t> seen;  // lower-cased canonical prefix → index
    for (size_t i = 0; i < config_.routes.size(); ++i) {
      const RouteConfig& r = config_.routes[i];
      std::string where = "routes[" + std::to_string(i) + "]";
      auto [it, inserted] = resource_ids_.emplace(r.resource, s_->resource_names.size());
      if (inserted) {
        s_->resource_names.push_back(r.resource);
        sensitive_.push_back(is_builtin_sensitive(r.resource));
      }
      if (r.sensitive) sensitive_[it->second] = true;
      // parse_config refuses what does not canonicalize (route_prefix_error);
      // a Config built otherwise is held to the same rule.
      TargetResult canon = canonicalize_target(r.prefix, "GET", PathPolicy::reject);
      if (canon.status != TargetStatus::ok || canon.target.has_query || !canon.target.authority.empty()) {
        add(where + ".prefix", "route prefix " + quote(r.prefix) + " is not a canonical path");
        continue;
      }
      std::string prefix(canon.target.path());
      std::string key = prefix;
      for (char& c : key) c = static_cast<char>(config::detail::ascii_lower(static_cast<unsigned char>(c)));
      if (auto [sit, fresh] = seen.emplace(key, i); !fresh) {
        add(where + ".prefix", "prefix " + quote(r.prefix) + " is the same path as routes[" +
                                   std::to_string(sit->second) + "] once canonicalized (" +
                                   quote(prefix) + ", compared case-insensitively)");
        continue;
      }
      s_->routes.push_back({std::move(prefix), it->second});
    }
    // Longest prefix first; equal lengths cannot both match one path.
    std::stable_sort(s_->routes.begin(), s_->routes.end(), [](const Route& a, const Route& b) {
      return a.prefix.size() > b.prefix.size();
    });
    // Views into s_->routes, which does not change from here on.
    for (uint32_t i = 0; i < s_->routes.size(); ++i) {
      const std::string& prefix = s_->routes[i].prefix;
      s_->route_by_prefix.emplace(prefix, i);
      if (s_->route_len.size() <= prefix.size()) s_->route_len.resize(prefix.size() + 1);
      s_->route_len[prefix.size()] = true;
    }
  }

  const Manifest* manifest_for(const std::string& org) const {
    for (const Manifest& m : manifests_) {
      if (m.org == org) return &m;
    }
    return nullptr;
  }

  void compile_peers() {
    std::map<std::string, size_t> uri_owner;
    for (size_t i = 0; i < config_.peers.size(); ++i) {
      const PeerConfig& p = config_.peers[i];
      std::string where = "peers[" + std::to_string(i) + "]";
      std::string name = "peer " + quote(p.org);
      PeerEntry e;
      e.slug = p.org;
      if (p.trust_level == "none") {
        e.trust = TrustLevel::none;
      } else if (p.trust_level == "full") {
        e.trust = TrustLevel::full;
      } else if (p.trust_level == "verified") {
        e.trust = TrustLevel::verified;
      } else {
        add(where + ".trust_level", name + ": trust_level must be none, verified or full (got " +
                                        quote(p.trust_level) + ")");
      }
      if (p.expires_at) {
        if (auto ms = config::detail::parse_rfc3339_ms(*p.expires_at)) {
          e.expires_at_ms = *ms;
        } else {
          add(where + ".expires_at", name + ": expires_at must be an RFC 3339 timestamp (got " +
                                         quote(*p.expires_at) + ")");
        }
      }
      if (p.allowed_regions) e.allowed_regions = string_list_json(*p.allowed_regions);
      if (p.allowed_artifact_types) {
        e.allowed_artifact_types = string_list_json(*p.allowed_artifact_types);
      }

      const Manifest* m = manifest_for(p.org);
      std::string from_manifest = m ? " in its manifest " + quote(m->source) : std::string();
      // entity_uri
      if (p.entity_uri && m && *p.entity_uri != m->entity_uri) {
        add(where + ".entity_uri", name + ": entity_uri " + quote(*p.entity_uri) + " differs from " +
                                       quote(m->entity_uri) + from_manifest +
                                       "; remove one or make them agree");
      }
      e.entity_uri = p.entity_uri ? *p.entity_uri : m ? m->entity_uri : std::string();
      if (e.entity_uri.empty()) {
        add(where + ".entity_uri",
            name + " has no entity_uri: set it inline or add a manifest with \"org\": " +
                quote(p.org) + " to manifests_dir");
      } else if (auto err = config::detail::uri_error(e.entity_uri)) {
        add(where + ".entity_uri", name + ": " + *err);
      } else if (e.entity_uri == config_.node.entity_uri) {
        add(where + ".entity_uri", name + ": entity_uri " + quote(e.entity_uri) +
                                       " is this node's own (node.entity_uri)");
      } else if (auto [it, fresh] = uri_owner.emplace(e.entity_uri, i); !fresh) {
        add(where + ".entity_uri", name + ": entity_uri " + quote(e.entity_uri) +
                                       " is also the entity_uri of peer " +
                                       quote(config_.peers[it->second].org) + " (peers[" +
                                       std::to_string(it->second) +
                                       "]); a certificate must identify one peer");
      }
      // endpoints
      if (p.endpoints && m && !m->endpoints.empty()) {
        std::set<std::string> a(p.endpoints->begin(), p.endpoints->end());
        std::set<std::string> b(m->endpoints.begin(), m->endpoints.end());
        if (a != b) {
          add(where + ".endpoints", name + ": endpoints differ from those" + from_manifest +
                                        "; remove one or make them agree");
        }
      }
      if (p.endpoints) {
        e.endpoints = *p.endpoints;
      } else if (m) {
        e.endpoints = m->endpoints;
      }
      // certificate pin
      if (p.cert_fingerprint && m && m->tls_cert_fingerprint &&
          *p.cert_fingerprint != *m->tls_cert_fingerprint) {
        add(where + ".cert_fingerprint", name + ": cert_fingerprint differs from "
                                              "tls_cert_fingerprint" + from_manifest +
                                              "; remove one or make them agree");
      }
      e.pin = p.cert_fingerprint ? p.cert_fingerprint : m ? m->tls_cert_fingerprint : std::nullopt;
      if (e.pin && !config::detail::is_sha256_hex(*e.pin)) {
        add(where + ".cert_fingerprint", name + ": the certificate pin must be 64 lowercase hex digits");
      }
      compile_trust_domain(p, m, where, name, e);
      if (auto it = anchors_.find(p.org); it != anchors_.end()) {
        e.anchors = it->second;
        for (const AnchorInfo& a : e.anchors) e.anchor_spki.push_back(a.spki_sha256);
        std::sort(e.anchor_spki.begin(), e.anchor_spki.end());
        e.anchor_spki.erase(std::unique(e.anchor_spki.begin(), e.anchor_spki.end()), e.anchor_spki.end());
      }
      peer_ids_.emplace(e.slug, static_cast<uint32_t>(s_->peers.size()));
      s_->peers.push_back(std::move(e));
    }
  }

  // trust_domain (inline or from the manifest) must be the trust domain of
  // the spiffe:// entity_uri, so the URI SAN that matches it has it too.
  void compile_trust_domain(const PeerConfig& p, const Manifest* m, const std::string& where,
                            const std::string& name, PeerEntry& e) {
    if (p.trust_domain && m && m->trust_domain && *p.trust_domain != *m->trust_domain) {
      add(where + ".trust_domain", name + ": trust_domain " + quote(*p.trust_domain) + " differs from " +
                                       quote(*m->trust_domain) + " in its manifest " + quote(m->source) +
                                       "; remove one or make them agree");
      return;
    }
    e.trust_domain = p.trust_domain ? p.trust_domain : m ? m->trust_domain : std::nullopt;
    if (!e.trust_domain || e.entity_uri.empty()) return;
    const auto td = config::detail::spiffe_trust_domain(e.entity_uri);
    if (!td) {
      add(where + ".trust_domain", name + ": trust_domain is set but entity_uri " + quote(e.entity_uri) +
                                       " is not a spiffe:// URI");
    } else if (*td != *e.trust_domain) {
      add(where + ".trust_domain", name + ": trust_domain " + quote(*e.trust_domain) +
                                       " is not the trust domain of entity_uri " + quote(e.entity_uri) +
                                       " (" + quote(*td) + ")");
    }
  }

  // ---- grants -------------------------------------------------------------
  // parse_grant (config/grant.hpp) has typed each grant and found its field
  // problems; here are the checks that need the whole snapshot. Each grant's
  // problems come out field by field, parse_grant's first, as one list.

  // config_.grant_problems by grant (where "grants[3]"), in order.
  std::map<std::string, std::vector<const ConfigProblem*>, std::less<>> field_problems_;

  void index_grant_problems() {
    for (const ConfigProblem& p : config_.grant_problems) {
      field_problems_[p.where.substr(0, p.where.find('.'))].push_back(&p);
    }
  }

  struct GrantCtx {
    Compiler* c;
    std::string where;  // "grants[i]"
    std::string name;   // "grant \"id\""
    std::span<const ConfigProblem* const> parsed;  // parse_grant's problems of this grant
    bool ok = true;
    void add(std::string_view field, const std::string& msg) {
      c->add(where + "." + std::string(field), name + ": " + msg);
      ok = false;
    }
    // Reports parse_grant's problems of `field`; true when there were some.
    bool emit(std::string_view field) {
      bool any = false;
      for (const ConfigProblem* p : parsed) {
        if (field_of(*p) == field) {
          c->problems.push_back(*p);
          any = true;
        }
      }
      ok = ok && !any;
      return any;
    }
    // ... and those of keys that are no grant field (unknown keys).
    void emit_unknown() {
      const auto& known = config::grant_keys();
      for (const ConfigProblem* p : parsed) {
        if (std::find(known.begin(), known.end(), field_of(*p)) != known.end()) continue;
        c->problems.push_back(*p);
        ok = false;
      }
    }
    std::string_view field_of(const ConfigProblem& p) const {
      return p.where.size() > where.size() ? std::string_view(p.where).substr(where.size() + 1) : std::string_view();
    }
  };

  // Resolves resource names to interned ids; unknown names are problems.
  bool resolve_resources(GrantCtx& g, std::string_view field, const std::vector<std::string>& names,
                         Roaring* set) {
    bool ok = true;
    for (const std::string& n : names) {
      auto it = resource_ids_.find(n);
      if (it == resource_ids_.end()) {
        std::string msg = "resource " + quote(n) + " is not in the route table";
        std::vector<std::string_view> known(s_->resource_names.begin(), s_->resource_names.end());
        if (auto near = config::detail::closest(n, known)) msg += "; did you mean " + quote(*near) + "?";
        g.add(field, msg);
        ok = false;
        continue;
      }
      set->add(it->second);
    }
    return ok;
  }

  void compile_grant(const Grant& gr, size_t index) {
    GrantCtx g{this, gr.where.empty() ? "grants[" + std::to_string(index) + "]" : gr.where, {}, {}};
    if (auto it = field_problems_.find(g.where); it != field_problems_.end()) g.parsed = it->second;
    g.name = gr.id.empty() ? "grant " + g.where : "grant " + quote(gr.id);

    GrantEntry e;
    e.id = gr.id;
    if (!g.emit("id")) {
      if (auto [it, fresh] = grant_where_.emplace(e.id, index); !fresh) {
        g.add("id", "duplicate grant id (also grants[" + std::to_string(it->second) + "])");
      }
    }
    g.emit_unknown();
    if (!g.emit("peer")) {
      if (auto it = peer_ids_.find(gr.peer); it == peer_ids_.end()) {
        g.add("peer", "peer " + quote(gr.peer) + " is not configured in peers");
      } else {
        e.peer = it->second;
      }
    }
    g.emit("status");
    e.status = gr.status;
    g.emit("approved_sensitive");
    g.emit("enforce");
    e.approved_sensitive = gr.approved_sensitive;
    e.enforce = gr.enforce;

    g.emit("resources");
    if (!gr.resources.empty() && resolve_resources(g, "resources", gr.resources, &e.resources)) {
      for (const std::string& r : gr.resources) {
        if (sensitive_[resource_ids_.find(r)->second] && !e.approved_sensitive) {
          g.add("resources", "resource " + quote(r) +
                                 " is sensitive; granting it needs \"approved_sensitive\": true");
        }
      }
    }
    g.emit("excluded_resources");
    resolve_resources(g, "excluded_resources", gr.excluded_resources, &e.excluded);
    g.emit("methods");
    e.methods = gr.methods;
    g.emit("filters");
    e.scope_json = gr.filters;
    g.emit("max_rows_per_query");
    e.max_rows = gr.max_rows_per_query;
    e.max_rows_text = std::to_string(e.max_rows);
    if (!g.emit("rate_limit") && gr.rate_limit) {
      const double rps = gr.rate_limit->rps;
      e.has_rate_limit = true;
      e.rps = rps;
      e.burst = gr.rate_limit->burst;
      e.interval_us = std::max<int64_t>(1, std::llround(1e6 / rps));
      e.tolerance_us = (int64_t{e.burst} - 1) * e.interval_us;
    }
    if (!g.emit("quota") && gr.quota) {
      e.requests_per_day = gr.quota->requests_per_day.value_or(0);
      e.bytes_per_day = gr.quota->bytes_per_day.value_or(0);
    }
    g.emit("source_cidrs");
    if (gr.source_cidrs) {
      for (const std::string& c : *gr.source_cidrs) {
        if (auto cerr = e.source_cidrs.add(c)) g.add("source_cidrs", *cerr);
      }
      e.source_cidrs.finish();
      e.has_source_cidrs = true;
    }
    g.emit("expires_at");
    if (gr.expires_at_ms) e.expires_at_ms = *gr.expires_at_ms;

    if (g.ok) s_->grants.push_back(std::move(e));
  }

  void index() {
    auto& s = *s_;
    for (uint32_t i = 0; i < s.peers.size(); ++i) {
      s.peer_by_uri.emplace_back(s.peers[i].entity_uri, i);
      s.peer_by_slug.emplace_back(s.peers[i].slug, i);
    }
    for (uint32_t i = 0; i < s.grants.size(); ++i) {
      s.grant_by_id.emplace_back(s.grants[i].id, i);
      if (s.grants[i].peer < s.peers.size()) s.peers[s.grants[i].peer].grants.push_back(i);
    }
    for (auto* v : {&s.peer_by_uri, &s.peer_by_slug, &s.grant_by_id}) std::sort(v->begin(), v->end());
  }
};

}  // namespace

CompileResult compile_policy(const Config& config, const std::vector<Manifest>& manifests,
                             const PeerAnchors& anchors, std::span<const std::string> ca_bundle_spki) {
  CompileResult result;
  try {
    Compiler c(config, manifests, anchors, ca_bundle_spki);
    auto impl = c.run();
    result.problems = std::move(c.problems);
    if (result.problems.empty()) result.snapshot = CompileAccess::make(std::move(impl));
  } catch (const std::exception& e) {
    result.snapshot.reset();
    result.problems.push_back({"(policy)", std::string("policy could not be compiled: ") + e.what()});
  }
  return result;
}

}  // namespace fedproxy::policy
