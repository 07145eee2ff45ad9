// evaluate (SPEC §3, §4): the per-request decision. Pure over its inputs,
// noexcept, no clock, no I/O; allocates only to build a rewritten target.
// It decides on the canonical target (canonicalize_target ran before, and a
// refused target never gets here: refuse_target answers it).
//
// Order, each failure with its own code:
//   identity: URI SAN → peer (or the dev-mode slug), pin, trust, expiry
//   grant:    certificate OID, else "Authorization: Bearer fg-<id>", else the
//             peer's only active grant; known, same peer, active, unexpired
//   source address → method (and every method override) → route (on the
//   canonical path) → resource excluded / not granted → rate limit → max rows.
//
// Shadow mode (enforce:false globally or on the grant): the decision is
// computed and its code reported, but allow stays true and shadow is set.
// What shadow mode does not relax, by design:
// - identity (san_mismatch, fingerprint_mismatch, peer_blocked, peer_expired):
//   authentication is not a policy rollout question; an unknown or blocked
//   client never reaches the app;
// - grant_inactive, grant_expired and grant_peer_mismatch under a grant's own
//   enforce:false (a revoked grant must stop working; another peer's grant
//   must not lend its shadow flag). The global switch does shadow them.
// In shadow mode a too-high limit is not rewritten (shadow changes nothing
// about the request); a rate-limit overrun is reported but not blocked, and
// (as when enforcing) only conforming requests take a token.

#include <algorithm>

#include "policy/policy_internal.hpp"
#include "policy/query_params.hpp"
#include "config/uri_chars.hpp"

namespace fedproxy::policy {

const char* to_string(TrustLevel t) {
  switch (t) {
    case TrustLevel::none: return "none";
    case TrustLevel::verified: return "verified";
    case TrustLevel::full: return "full";
  }
  return "none";
}

const char* to_string(DenyCode c) {
  switch (c) {
    case DenyCode::none: return "none";
    case DenyCode::bad_request: return "bad_request";
    case DenyCode::san_mismatch: return "san_mismatch";
    case DenyCode::fingerprint_mismatch: return "fingerprint_mismatch";
    case DenyCode::peer_blocked: return "peer_blocked";
    case DenyCode::peer_expired: return "peer_expired";
    case DenyCode::unknown_grant: return "unknown_grant";
    case DenyCode::grant_inactive: return "grant_inactive";
    case DenyCode::grant_expired: return "grant_expired";
    case DenyCode::grant_peer_mismatch: return "grant_peer_mismatch";
    case DenyCode::source_not_allowed: return "source_not_allowed";
    case DenyCode::method_not_allowed: return "method_not_allowed";
    case DenyCode::no_route: return "no_route";
    case DenyCode::resource_not_granted: return "resource_not_granted";
    case DenyCode::resource_excluded: return "resource_excluded";
    case DenyCode::limit_exceeded: return "limit_exceeded";
    case DenyCode::rate_limited: return "rate_limited";
    case DenyCode::ambiguous_path: return "ambiguous_path";
    case DenyCode::untrusted_issuer: return "untrusted_issuer";
    case DenyCode::quota_exceeded: return "quota_exceeded";
    case DenyCode::limits_unavailable: return "limits_unavailable";
  }
  return "none";
}

namespace {

const char* deny_message(DenyCode c) {
  switch (c) {
    case DenyCode::none: return "";
    case DenyCode::bad_request: return "The request target is malformed.";
    case DenyCode::san_mismatch: return "The client certificate does not identify a configured peer.";
    case DenyCode::fingerprint_mismatch:
      return "The client certificate does not match the fingerprint pinned for this peer.";
    case DenyCode::peer_blocked: return "This peer is blocked.";
    case DenyCode::peer_expired: return "This peer's federation agreement has expired.";
    case DenyCode::unknown_grant: return "No grant is known for this request.";
    case DenyCode::grant_inactive: return "The grant is not active.";
    case DenyCode::grant_expired: return "The grant has expired.";
    case DenyCode::grant_peer_mismatch: return "The grant belongs to another peer.";
    case DenyCode::source_not_allowed: return "The source address is not allowed by the grant.";
    case DenyCode::method_not_allowed: return "The request method is not allowed by the grant.";
    case DenyCode::no_route: return "No route matches the request path.";
    case DenyCode::resource_not_granted: return "The grant does not cover this resource.";
    case DenyCode::resource_excluded: return "This resource is excluded from the grant.";
    case DenyCode::limit_exceeded:
      return "The limit query parameter exceeds the grant's maximum rows per query.";
    case DenyCode::rate_limited: return "The grant's rate limit is exceeded; retry later.";
    case DenyCode::ambiguous_path:
      return "The request target could be read differently by different parsers and is refused.";
    case DenyCode::untrusted_issuer:
      return "The client certificate is not issued by a trust anchor of the peer it names.";
    case DenyCode::quota_exceeded: return "The grant's daily quota is used up; retry after the end of the UTC day.";
    case DenyCode::limits_unavailable:
      return "The shared rate-limit store is unreachable and this node refuses limited requests meanwhile.";
  }
  return "";
}

int deny_status(DenyCode c) {
  switch (c) {
    case DenyCode::none: return 200;
    case DenyCode::bad_request:
    case DenyCode::ambiguous_path:
    case DenyCode::limit_exceeded: return 400;
    case DenyCode::rate_limited:
    case DenyCode::quota_exceeded: return 429;
    case DenyCode::limits_unavailable: return 503;
    default: return 403;
  }
}

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (config::detail::ascii_lower(static_cast<unsigned char>(s[i])) != static_cast<unsigned char>(prefix[i])) return false;
  }
  return true;
}

// "Bearer fg-<id>" (scheme case-insensitive) → id. Other credentials are the
// app's own and are left alone.
bool bearer_grant(std::string_view auth, std::string_view* id) noexcept {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  auth = trim(auth);
  if (!starts_with_ci(auth, "bearer") || auth.size() < 7 || (auth[6] != ' ' && auth[6] != '\t')) {
    return false;
  }
  std::string_view token = trim(auth.substr(7));
  if (!token.starts_with("fg-")) return false;
  token.remove_prefix(3);
  if (token.find_first_of(" \t") != std::string_view::npos) return false;
  *id = token;
  return true;
}

// A method-override value names a granted method: compared after ASCII
// upper-casing (frameworks do that); a value that is not a method token
// ("DELETE, GET", "") names none.
bool override_granted(const GrantEntry& g, std::string_view value) noexcept {
  if (value.empty()) return false;
  for (const char c : value) {
    if (!config::detail::is_tchar(static_cast<unsigned char>(c))) return false;
  }
  for (const std::string& m : g.methods) {
    if (m.size() != value.size()) continue;
    size_t i = 0;
    while (i < m.size() && m[i] == static_cast<char>(config::detail::ascii_upper(static_cast<unsigned char>(value[i])))) ++i;
    if (i == m.size()) return true;
  }
  return false;
}

// Longest method name a grant can hold (compile.cpp's valid_method).
constexpr size_t kMaxMethodBytes = 32;

// The request method and every override of it, from the headers and from
// each "_method" query parameter, are granted (SPEC §4).
bool methods_granted(const GrantEntry& g, const RequestInfo& r) noexcept {
  if (std::find(g.methods.begin(), g.methods.end(), r.method) == g.methods.end()) return false;
  for (const std::string_view v : r.method_overrides) {
    if (!override_granted(g, v)) return false;
  }
  bool ok = true;
  if (r.has_query) {
    for_each_param(r.query, "_method", [&](const QueryParam& p) {
      char buf[kMaxMethodBytes];
      const size_t n = decode_component(p.value, buf, sizeof buf);
      ok = ok && p.has_value && n <= sizeof buf && override_granted(g, std::string_view(buf, n));
    });
  }
  return ok;
}

// The origin-form to forward: the canonical path and the query with every
// limit parameter whose value is not in 1..max set to max; every other
// byte as it was.
std::string rewrite_limits(const RequestInfo& r, std::string_view name, const GrantEntry& g) {
  std::string out;
  out.reserve(r.path.size() + 1 + r.query.size() + 16);
  out.append(r.path);
  out += '?';
  const char* cursor = r.query.data();
  for_each_param(r.query, name, [&](const QueryParam& p) {
    if (p.has_value && value_in_range(p.value, g.max_rows)) return;
    const char* value_start = p.has_value ? p.value.data() : p.key.data() + p.key.size();
    out.append(cursor, value_start);
    if (!p.has_value) out += '=';
    out += g.max_rows_text;
    cursor = p.piece.data() + p.piece.size();
  });
  out.append(cursor, r.query.data() + r.query.size());
  return out;
}

struct Evaluator {
  Decision d;

  // A denial. `shadow` turns it into a reported-but-allowed decision.
  Decision deny(DenyCode code, bool shadow) noexcept {
    d.code = code;
    d.status = deny_status(code);
    d.message = deny_message(code);
    d.shadow = shadow;
    d.allow = shadow;
    // Identity failures close: nothing later on this connection can be trusted.
    d.close_connection = !shadow && (code == DenyCode::san_mismatch || code == DenyCode::fingerprint_mismatch ||
                                     code == DenyCode::untrusted_issuer);
    return std::move(d);
  }
};

struct PeerMatch {
  const PeerEntry* peer = nullptr;  // null: no peer, or SANs of two peers
  uint32_t index = 0;
  bool pin_ok = true;               // the peer's certificate pin, if any, matches
  bool anchor_ok = true;            // the chain reaches the peer's own anchors, if it has any
};

PeerMatch match_peer(const Snapshot::Impl& s, const Subject& subject) noexcept {
  PeerMatch m;
  bool dev = false;
  if (!subject.uri_sans.empty()) {
    for (const std::string& san : subject.uri_sans) {
      const uint32_t* idx = find_sorted(s.peer_by_uri, san);
      if (idx == nullptr) continue;
      if (m.peer != nullptr && *idx != m.index) return {};  // SANs of two different peers: nobody
      m.peer = &s.peers[*idx];
      m.index = *idx;
    }
  } else if (!subject.dev_peer.empty()) {
    if (const uint32_t* idx = find_sorted(s.peer_by_slug, subject.dev_peer)) {
      m.peer = &s.peers[*idx];
      m.index = *idx;
      dev = true;
    }
  }
  // In insecure dev mode there is no certificate to pin and no chain.
  if (m.peer == nullptr || dev) return m;
  if (m.peer->pin) m.pin_ok = subject.der_sha256 == *m.peer->pin;
  if (!m.peer->anchor_spki.empty()) {
    m.anchor_ok = chain_reaches_anchor(subject.chain_spki_sha256, m.peer->anchor_spki);
  } else {
    // No anchors of its own: tls.ca_bundle decides, never another peer's CA.
    m.anchor_ok = !chain_reaches_anchor(subject.chain_spki_sha256, s.peer_only_anchor_spki);
  }
  return m;
}

}  // namespace

bool is_method_override_header(std::string_view name) noexcept {
  static constexpr std::string_view kNames[] = {"x-http-method-override", "x-http-method", "x-method-override"};
  for (const std::string_view n : kNames) {
    if (n.size() != name.size()) continue;
    size_t i = 0;
    for (; i < n.size(); ++i) {
      const char c = static_cast<char>(config::detail::ascii_lower(static_cast<unsigned char>(name[i])));
      if ((c == '_' ? '-' : c) != n[i]) break;
    }
    if (i == n.size()) return true;
  }
  return false;
}

Decision refuse_target(config::TargetStatus status) noexcept {
  Decision d;
  d.code = status == config::TargetStatus::bad_request ? DenyCode::bad_request : DenyCode::ambiguous_path;
  d.status = deny_status(d.code);
  d.message = deny_message(d.code);
  return d;
}

const PeerEntry* identify(const Snapshot& snapshot, const Subject& subject) noexcept {
  const PeerMatch m = match_peer(snapshot.impl(), subject);
  return m.pin_ok && m.anchor_ok ? m.peer : nullptr;
}

Decision evaluate(const Snapshot& snapshot, RateLimiter& limiter, const Subject& subject,
                  const RequestInfo& request, int64_t now_unix_ms) noexcept {
  const Snapshot::Impl& s = snapshot.impl();
  Evaluator ev;
  Decision& d = ev.d;

  // ---- identity (§3) ---------------------------------------------------
  const PeerMatch match = match_peer(s, subject);
  const PeerEntry* peer = match.peer;
  if (peer == nullptr) return ev.deny(DenyCode::san_mismatch, false);
  const uint32_t peer_index = match.index;
  d.peer = peer;
  d.entity_uri = peer->entity_uri;
  if (!match.pin_ok) return ev.deny(DenyCode::fingerprint_mismatch, false);
  if (!match.anchor_ok) return ev.deny(DenyCode::untrusted_issuer, false);
  if (peer->trust == TrustLevel::none) return ev.deny(DenyCode::peer_blocked, false);
  if (now_unix_ms >= peer->expires_at_ms) return ev.deny(DenyCode::peer_expired, false);

  // ---- grant (§4) --------------------------------------------------------
  const bool global_shadow = !s.enforce;
  std::string_view bearer_id;
  const bool bearer = bearer_grant(request.authorization, &bearer_id);
  // The fg- token is a federation credential, not the app's: always stripped.
  d.strip_authorization = bearer;
  const GrantEntry* g = nullptr;
  if (subject.grant_oid || bearer) {
    std::string_view id = subject.grant_oid ? *subject.grant_oid : bearer_id;
    const uint32_t* idx = find_sorted(s.grant_by_id, id);
    if (idx == nullptr) return ev.deny(DenyCode::unknown_grant, global_shadow);
    if (s.grants[*idx].peer != peer_index) {
      return ev.deny(DenyCode::grant_peer_mismatch, global_shadow);
    }
    g = &s.grants[*idx];
  } else {
    // The peer's only active grant. Expired ones do not count when another
    // is current; a single active grant that has expired is reported as such.
    const GrantEntry* current = nullptr;
    const GrantEntry* any_active = nullptr;
    int current_n = 0, active_n = 0;
    for (uint32_t gi : peer->grants) {
      const GrantEntry& c = s.grants[gi];
      if (c.status != config::GrantStatus::active) continue;
      ++active_n;
      any_active = &c;
      if (now_unix_ms < c.expires_at_ms) {
        ++current_n;
        current = &c;
      }
    }
    if (current_n == 1) {
      g = current;
    } else if (current_n == 0 && active_n == 1) {
      g = any_active;
    } else {
      return ev.deny(DenyCode::unknown_grant, global_shadow);
    }
  }
  d.grant = g;
  if (g->status != config::GrantStatus::active) return ev.deny(DenyCode::grant_inactive, global_shadow);
  if (now_unix_ms >= g->expires_at_ms) return ev.deny(DenyCode::grant_expired, global_shadow);
  const bool shadow = global_shadow || !g->enforce;

  // ---- source address ----------------------------------------------------
  if (g->has_source_cidrs && !g->source_cidrs.contains(request.source_ip)) {
    return ev.deny(DenyCode::source_not_allowed, shadow);
  }

  // ---- method, and every override of it ------------------------------------
  if (!methods_granted(*g, request)) return ev.deny(DenyCode::method_not_allowed, shadow);

  // ---- canonical path → route → resource -----------------------------------
  const Route* route = find_route(s, request.path);
  if (route == nullptr) return ev.deny(DenyCode::no_route, shadow);
  d.resource = s.resource_names[route->resource];
  d.route_prefix = route->prefix;
  if (g->excluded.contains(route->resource)) return ev.deny(DenyCode::resource_excluded, shadow);
  if (!g->resources.contains(route->resource)) {
    return ev.deny(DenyCode::resource_not_granted, shadow);
  }

  // ---- quotas, then rate limit ---------------------------------------------
  if (g->limited()) {
    LimitCell* cell = find_cell(current_table(*limiter.impl()), s, *g);
    if (cell == nullptr) {
      // No cell for this grant (the limiter was never bound to a snapshot
      // holding it): fail closed rather than run without a limit.
      d.retry_after_s = 1;
      return ev.deny(DenyCode::rate_limited, shadow);
    }
    const LimitMode mode = limiter.mode();
    const uint32_t replicas = limiter.replicas();
    const LimitParams p = limit_params(*g);
    auto retry_after = [&](int64_t wait_us) {
      int64_t secs = (wait_us + 999999) / 1000000;
      d.retry_after_s = static_cast<uint32_t>(std::clamp<int64_t>(secs, 1, 86400 * 366));
    };
    if (mode == LimitMode::reject) {
      retry_after(1000000);
      return ev.deny(DenyCode::limits_unavailable, shadow);
    }
    const int64_t now_ms = std::max<int64_t>(0, now_unix_ms);
    if (p.bytes_per_day) {
      Take t = check_bytes_quota(*cell, p, mode, now_ms);
      if (!t.ok) {
        retry_after(t.wait_us);
        return ev.deny(DenyCode::quota_exceeded, shadow);
      }
    }
    if (p.requests_per_day) {
      Take t = take_request_quota(*cell, p, mode, replicas, now_ms);
      if (!t.ok) {
        retry_after(t.wait_us);
        return ev.deny(DenyCode::quota_exceeded, shadow);
      }
    }
    if (p.has_rate) {
      Take t = take_rate(*cell, p, mode, replicas, now_ms * 1000);
      if (!t.ok) {
        if (p.requests_per_day) give_back_request(*cell);  // refused: not a request of the day
        retry_after(t.wait_us);
        return ev.deny(DenyCode::rate_limited, shadow);
      }
    }
  }

  // ---- max rows ------------------------------------------------------------
  if (request.has_query) {
    bool over = false;
    for_each_param(request.query, s.limit_param, [&](const QueryParam& p) {
      over = over || !p.has_value || !value_in_range(p.value, g->max_rows);
    });
    if (over) {
      if (s.limit_reject) return ev.deny(DenyCode::limit_exceeded, shadow);
      if (!shadow) {
        try {
          d.rewritten_target = rewrite_limits(request, s.limit_param, *g);
        } catch (...) {
          return ev.deny(DenyCode::limit_exceeded, false);  // out of memory: fail closed
        }
      }
    }
  }

  d.allow = true;
  d.status = 200;
  d.shadow = false;
  return std::move(d);
}

}  // namespace fedproxy::policy
