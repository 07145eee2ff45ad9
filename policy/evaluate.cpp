// evaluate (SPEC §3, §4): the per-request decision. Pure over its inputs,
// noexcept, no clock, no I/O; allocates only to build a rewritten target
// (and, for a path longer than kPathStack bytes, one scratch buffer).
//
// Order, each failure with its own code:
//   identity: URI SAN → peer (or the dev-mode slug), pin, trust, expiry
//   grant:    certificate OID, else "Authorization: Bearer fg-<id>", else the
//             peer's only active grant; known, same peer, active, unexpired
//   source address → method → path (normalised; 400 when malformed) → route
//   → resource excluded / not granted → rate limit → max rows.
//
// Shadow mode (enforce:false globally or on the grant): the decision is
// computed and its code reported, but allow stays true and shadow is set.
// What shadow mode does not relax, by design:
// - identity (san_mismatch, fingerprint_mismatch, peer_blocked, peer_expired):
//   authentication is not a policy rollout question; an unknown or blocked
//   client never reaches the app;
// - a malformed path (bad_request): the request is broken, not unauthorised;
// - grant_inactive, grant_expired and grant_peer_mismatch under a grant's own
//   enforce:false (a revoked grant must stop working; another peer's grant
//   must not lend its shadow flag). The global switch does shadow them.
// In shadow mode a too-high limit is not rewritten (shadow changes nothing
// about the request); a rate-limit overrun is reported but not blocked, and
// (as when enforcing) only conforming requests take a token.

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "policy/policy_internal.hpp"

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
  }
  return "none";
}

namespace {

const char* deny_message(DenyCode c) {
  switch (c) {
    case DenyCode::none: return "";
    case DenyCode::bad_request: return "The request path is malformed or climbs above the root.";
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
  }
  return "";
}

int deny_status(DenyCode c) {
  switch (c) {
    case DenyCode::none: return 200;
    case DenyCode::bad_request:
    case DenyCode::ambiguous_path:
    case DenyCode::limit_exceeded: return 400;
    case DenyCode::rate_limited: return 429;
    default: return 403;
  }
}

constexpr size_t kPathStack = 8192;

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits a request target into path and query (views into target). Origin
// form "/p?q" and absolute form "http(s)://authority/p?q" (empty path = "/").
bool split_target(std::string_view t, std::string_view* path, std::string_view* query) noexcept {
  std::string_view rest = t;
  if (!t.starts_with("/")) {
    size_t skip = starts_with_ci(t, "http://") ? 7 : starts_with_ci(t, "https://") ? 8 : 0;
    if (skip == 0) return false;
    rest = t.substr(skip);
    size_t k = 0;
    while (k < rest.size() && rest[k] != '/' && rest[k] != '?' && rest[k] != '#') ++k;
    if (k == rest.size()) k = std::string_view::npos;
    if (k == std::string_view::npos || k == 0) {
      if (k == 0) return false;  // no authority
      *path = {};
      *query = {};
      return true;
    }
    rest = rest.substr(k);
  }
  size_t end = 0;
  while (end < rest.size() && rest[end] != '?' && rest[end] != '#') ++end;
  *path = rest.substr(0, end);
  *query = {};
  if (end < rest.size() && rest[end] == '?') {
    std::string_view q = rest.substr(end + 1);
    *query = q.substr(0, q.find('#'));
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

// Compares a query key with the limit parameter name, percent-decoding the
// key as the app would (so "%6Cimit" is "limit").
bool key_is(std::string_view key, std::string_view name) noexcept {
  size_t i = 0, k = 0;
  while (i < key.size()) {
    char c = key[i];
    if (c == '%' && i + 2 < key.size()) {
      int h = hex_value(key[i + 1]), l = hex_value(key[i + 2]);
      if (h >= 0 && l >= 0) {
        c = static_cast<char>(h * 16 + l);
        i += 2;
      }
    }
    if (k >= name.size() || name[k] != c) return false;
    ++k;
    ++i;
  }
  return k == name.size();
}

// True when the (percent-decoded) value is a decimal integer in 1..max.
// Anything else (0, negative, empty, "1e5", overflow) is out of range: the
// app's reading of it is unknown, so it gets the grant's maximum.
bool value_in_range(std::string_view v, uint32_t max) noexcept {
  uint64_t n = 0;
  size_t digits = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '%' && i + 2 < v.size()) {
      int h = hex_value(v[i + 1]), l = hex_value(v[i + 2]);
      if (h < 0 || l < 0) return false;
      c = static_cast<char>(h * 16 + l);
      i += 2;
    }
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > max) return false;
    ++digits;
  }
  return digits > 0 && n >= 1;
}

// Walks the query's key=value pairs; calls f(pair, key, value, has_eq) for
// those whose key is the limit parameter.
template <typename F>
void for_each_limit(std::string_view query, std::string_view name, F&& f) noexcept {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key_is(key, name)) {
      bool has_eq = eq != std::string_view::npos;
      f(pair, key, has_eq ? pair.substr(eq + 1) : std::string_view(), has_eq);
    }
    pos = amp + 1;
  }
}

struct Evaluator {
  const Snapshot::Impl& s;
  Decision d;
  bool path_malformed = false;

  // A denial. `shadow` turns it into a reported-but-allowed decision, unless
  // the path is malformed: that is always refused.
  Decision deny(DenyCode code, bool shadow) noexcept {
    if (shadow && path_malformed) return deny(DenyCode::bad_request, false);
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

const PeerEntry* identify(const Snapshot& snapshot, const Subject& subject) noexcept {
  const PeerMatch m = match_peer(snapshot.impl(), subject);
  return m.pin_ok && m.anchor_ok ? m.peer : nullptr;
}

Decision evaluate(const Snapshot& snapshot, RateLimiter& limiter, const Subject& subject,
                  const RequestInfo& request, int64_t now_unix_ms) noexcept {
  const Snapshot::Impl& s = snapshot.impl();
  Evaluator ev{s, {}, false};
  Decision& d = ev.d;

  // The path, normalised up front (it is also needed to refuse a malformed
  // request in shadow mode); used for routing below.
  std::string_view raw_path, query;
  char stack_buf[kPathStack];
  std::unique_ptr<char[]> heap_buf;
  std::string_view path;
  if (!split_target(request.target, &raw_path, &query)) {
    ev.path_malformed = true;
  } else if (raw_path.empty()) {
    path = "/";
  } else {
    char* buf = stack_buf;
    if (raw_path.size() > kPathStack) {
      heap_buf.reset(new (std::nothrow) char[raw_path.size()]);
      buf = heap_buf.get();
    }
    size_t len = 0;
    if (buf == nullptr ||
        normalize_into(raw_path, buf, std::max(raw_path.size(), size_t{1}), &len) != PathStatus::ok) {
      ev.path_malformed = true;
    } else {
      path = std::string_view(buf, len);
    }
  }

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
      if (c.status != GrantStatus::active) continue;
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
  if (g->status != GrantStatus::active) return ev.deny(DenyCode::grant_inactive, global_shadow);
  if (now_unix_ms >= g->expires_at_ms) return ev.deny(DenyCode::grant_expired, global_shadow);
  const bool shadow = global_shadow || !g->enforce;

  // ---- source address ----------------------------------------------------
  if (g->has_source_cidrs && !g->source_cidrs.contains(request.source_ip)) {
    return ev.deny(DenyCode::source_not_allowed, shadow);
  }

  // ---- method ------------------------------------------------------------
  bool method_ok = false;
  for (const std::string& m : g->methods) {
    if (m == request.method) {
      method_ok = true;
      break;
    }
  }
  if (!method_ok) return ev.deny(DenyCode::method_not_allowed, shadow);

  // ---- path → route → resource -------------------------------------------
  if (ev.path_malformed) return ev.deny(DenyCode::bad_request, false);
  const Route* route = find_route(s, path);
  if (route == nullptr) return ev.deny(DenyCode::no_route, shadow);
  d.resource = s.resource_names[route->resource];
  if (g->excluded.contains(route->resource)) return ev.deny(DenyCode::resource_excluded, shadow);
  if (!g->resources.contains(route->resource)) {
    return ev.deny(DenyCode::resource_not_granted, shadow);
  }

  // ---- rate limit ----------------------------------------------------------
  if (g->has_rate_limit) {
    Bucket* bucket = nullptr;
    const LimiterTable* table = current_table(*limiter.impl());
    const size_t gi = static_cast<size_t>(g - s.grants.data());
    if (table && table->generation == s.generation) {
      bucket = table->by_grant[gi].get();
    } else if (table) {
      // The limiter is bound to another snapshot (a reload in progress).
      const auto& ids = table->by_id;
      size_t lo = 0, hi = ids.size();
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (std::string_view(ids[mid].first) < std::string_view(g->id)) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (lo < ids.size() && ids[lo].first == g->id) bucket = ids[lo].second.get();
    }
    if (bucket == nullptr) {
      // No bucket for this grant (the limiter was never bound to a snapshot
      // holding it): fail closed rather than run without a limit.
      d.retry_after_s = 1;
      return ev.deny(DenyCode::rate_limited, shadow);
    }
    const int64_t now_us = std::max<int64_t>(0, now_unix_ms) * 1000;
    TakeResult t = take_token(*bucket, *g, now_us);
    if (!t.ok) {
      int64_t secs = (t.wait_us + 999999) / 1000000;
      d.retry_after_s = static_cast<uint32_t>(std::clamp<int64_t>(secs, 1, 86400 * 366));
      return ev.deny(DenyCode::rate_limited, shadow);
    }
  }

  // ---- max rows ------------------------------------------------------------
  if (!query.empty()) {
    bool over = false;
    for_each_limit(query, s.limit_param,
                   [&](std::string_view, std::string_view, std::string_view value, bool has_eq) {
                     if (!has_eq || !value_in_range(value, g->max_rows)) over = true;
                   });
    if (over) {
      if (s.limit_reject) return ev.deny(DenyCode::limit_exceeded, shadow);
      if (!shadow) {
        try {
          std::string out;
          out.reserve(request.target.size() + 8);
          const char* cursor = request.target.data();
          for_each_limit(query, s.limit_param,
                         [&](std::string_view pair, std::string_view key, std::string_view value,
                             bool has_eq) {
                           if (has_eq && value_in_range(value, g->max_rows)) return;
                           const char* vstart = has_eq ? value.data() : key.data() + key.size();
                           const char* vend = pair.data() + pair.size();
                           out.append(cursor, vstart);
                           if (!has_eq) out += '=';
                           out += g->max_rows_text;
                           cursor = vend;
                         });
          out.append(cursor, request.target.data() + request.target.size());
          d.rewritten_target = std::move(out);
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
