#include "proxy/core/policy_authorizer.hpp"

#include <array>

namespace fedproxy::core {

namespace {

// More method-override header lines than any client sends; past it the last
// slot holds a value that names no method, so the request is refused.
constexpr size_t kMaxOverrideHeaders = 8;

// The values of the request's method-override headers (SPEC §4), as views
// into the head. Returns how many.
size_t method_overrides(const http1::Headers& headers, std::array<std::string_view, kMaxOverrideHeaders>& out) {
  size_t n = 0;
  for (const http1::Header& h : headers) {
    if (!policy::is_method_override_header(h.name)) continue;
    if (n == out.size()) {
      out.back() = {};
      break;
    }
    out[n++] = h.value;
  }
  return n;
}

// A denial as the session answers it (SPEC §6), on top of what `v` already
// says about the peer and grant (for logs and audit). In place: every
// return of authorize() is the same Verdict, so it is never moved.
void set_denial(Verdict& v, const policy::Decision& d) {
  v.allow = false;
  v.decision = base::Decision::deny;
  v.status = d.status;
  v.code = policy::to_string(d.code);
  v.reason = v.code;
  v.message = d.message;
  v.close_connection = d.close_connection;
  if (d.retry_after_s) v.extra_response_headers = "Retry-After: " + std::to_string(d.retry_after_s) + "\r\n";
}

}  // namespace

PolicyAuthorizer::PolicyAuthorizer(std::shared_ptr<const policy::Snapshot> snapshot, bool insecure,
                                   std::shared_ptr<policy::RateLimiter> limiter)
    : snapshot_(std::move(snapshot)),
      owns_limiter_(limiter == nullptr),
      insecure_(insecure) {
  limiter_ = owns_limiter_ ? std::make_shared<policy::RateLimiter>() : std::move(limiter);
  if (owns_limiter_) limiter_->rebind(*snapshot_);
}

void PolicyAuthorizer::set_snapshot(std::shared_ptr<const policy::Snapshot> snapshot) {
  if (owns_limiter_) limiter_->rebind(*snapshot);
  peer_lines_.clear();  // keyed by entries of the old snapshot
  grant_lines_.clear();
  snapshot_ = std::move(snapshot);
}

const std::string& PolicyAuthorizer::peer_lines(const policy::PeerEntry& p) {
  auto [it, fresh] = peer_lines_.try_emplace(&p);
  if (fresh) {
    append_header_line(it->second, "X-Federation-Peer", policy::peer_slug(p));
    append_header_line(it->second, "X-Federation-Trust", policy::to_string(policy::peer_trust(p)));
    append_header_line(it->second, "X-Federation-Allowed-Regions", policy::peer_allowed_regions(p));
    append_header_line(it->second, "X-Federation-Allowed-Artifact-Types", policy::peer_allowed_artifact_types(p));
  }
  return it->second;
}

const std::string& PolicyAuthorizer::grant_lines(const policy::GrantEntry& g) {
  auto [it, fresh] = grant_lines_.try_emplace(&g);
  if (fresh) {
    append_header_line(it->second, "X-Federation-Grant", policy::grant_id(g));
    append_header_line(it->second, "X-Federation-Max-Rows", policy::grant_max_rows_text(g));
    append_header_line(it->second, "X-Federation-Scope", policy::grant_scope_json(g));
  }
  return it->second;
}

policy::Subject PolicyAuthorizer::subject_of(const RequestView& r) const {
  policy::Subject subject;
  subject.uri_sans = r.peer.uri_sans;
  subject.chain_spki_sha256 = r.peer.chain_spki_sha256;
  subject.der_sha256 = r.peer.der_sha256;
  if (r.peer.grant_id) subject.grant_oid = *r.peer.grant_id;
  if (insecure_) {
    if (const auto* dev = http1::find_header(r.head.headers, "x-federation-dev-peer")) subject.dev_peer = dev->value;
  }
  return subject;
}

RequestIdentity PolicyAuthorizer::identify(const RequestView& r) {
  RequestIdentity id;
  if (const policy::PeerEntry* p = policy::identify(*snapshot_, subject_of(r))) {
    id.peer = policy::peer_slug(*p);
    id.entity_uri = policy::peer_entity_uri(*p);
  }
  return id;
}

Verdict PolicyAuthorizer::authorize(const RequestView& r) { return to_verdict(decide(r), r); }

policy::Decision PolicyAuthorizer::decide(const RequestView& r) {
  if (r.target == nullptr) {
    // Only the ingress (which canonicalizes every target) runs policy: a
    // request without its canonical target is not one policy can decide on.
    return policy::refuse_target(config::TargetStatus::bad_request);
  }
  const policy::Subject subject = subject_of(r);
  std::array<std::string_view, kMaxOverrideHeaders> overrides;
  policy::RequestInfo info;
  info.method = r.head.method;
  info.set_target(*r.target);
  info.method_overrides = std::span<const std::string_view>(overrides.data(), method_overrides(r.head.headers, overrides));
  if (const auto* auth = http1::find_header(r.head.headers, "authorization")) info.authorization = auth->value;
  info.source_ip = r.source_ip;
  return policy::evaluate(*snapshot_, *limiter_, subject, info, r.now_unix_ms);
}

Verdict PolicyAuthorizer::to_verdict(policy::Decision&& d, const RequestView& r) {
  Verdict v;
  if (d.peer) v.peer = policy::peer_slug(*d.peer);
  if (d.grant) v.grant = policy::grant_id(*d.grant);
  v.resource = d.resource;
  v.entity_uri = d.entity_uri;
  if (d.code != policy::DenyCode::none) v.reason = policy::to_string(d.code);
  if (!d.allow) {
    set_denial(v, d);
    return v;
  }
  v.decision = d.shadow ? base::Decision::shadow_deny : base::Decision::allow;
  v.strip_authorization = d.strip_authorization;
  if (d.rewritten_target) v.target = std::move(*d.rewritten_target);

  // SPEC §5: what the app learns about the peer (inbound copies were stripped).
  // One buffer, sized once, for all of them (plus the X-Request-Id and Host
  // lines the session appends).
  v.header_lines.reserve(960);
  auto add = [&v](std::string_view name, std::string_view value) { append_header_line(v.header_lines, name, value); };
  if (d.peer) v.header_lines += peer_lines(*d.peer);
  add("X-Federation-Entity", d.entity_uri);
  if (d.grant) v.header_lines += grant_lines(*d.grant);
  add("X-Federation-Resource", d.resource);
  if (r.peer.present) append_xfcc_line(v.header_lines, r.peer, d.entity_uri);
  return v;
}

}  // namespace fedproxy::core
