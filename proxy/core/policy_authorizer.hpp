// The Authorizer backed by the compiled policy snapshot (SPEC §3–§5): runs
// policy::evaluate per request against the latest snapshot (so a reload
// reaches kept-alive connections at their next request) and turns the
// decision into headers for the app or a JSON denial.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "policy/policy.hpp"
#include "proxy/core/authorizer.hpp"

namespace fedproxy::core {

class PolicyAuthorizer final : public Authorizer {
 public:
  // insecure: peer identity comes from X-Federation-Dev-Peer (SPEC §9).
  // limiter: shared by the authorizers of all worker loops so that a grant's
  // rate limit holds for the process (null = a private one). A shared
  // limiter is rebound by its owner, once per reload and before the new
  // snapshot is published, so a slow worker can never rebind it backwards.
  PolicyAuthorizer(std::shared_ptr<const policy::Snapshot> snapshot, bool insecure,
                   std::shared_ptr<policy::RateLimiter> limiter = nullptr);
  // A reload: the new snapshot applies from the next request on; rate-limit
  // buckets of unchanged grants keep their state.
  void set_snapshot(std::shared_ptr<const policy::Snapshot> snapshot);
  const std::shared_ptr<const policy::Snapshot>& snapshot() const { return snapshot_; }

  // authorize() = to_verdict(decide(r), r): the two halves are public so that
  // `policy explain` answers from this very code (proxy/core/explain.hpp).
  Verdict authorize(const RequestView& request) override;
  RequestIdentity identify(const RequestView& request) override;
  // The policy decision for the request (runs policy::evaluate; takes a
  // rate-limit token when the request conforms).
  policy::Decision decide(const RequestView& request);
  // The session's side of a decision: a SPEC §6 denial, or the headers for
  // the app (SPEC §5) and the rewritten target.
  Verdict to_verdict(policy::Decision&& decision, const RequestView& request);

 private:
  policy::Subject subject_of(const RequestView& r) const;
  // The header lines that depend only on the peer, or only on the grant,
  // formatted once per snapshot (entries point into snapshot_; cleared when
  // it changes). One authorizer per worker loop: no locking.
  const std::string& peer_lines(const policy::PeerEntry& p);
  const std::string& grant_lines(const policy::GrantEntry& g);
  std::unordered_map<const policy::PeerEntry*, std::string> peer_lines_;
  std::unordered_map<const policy::GrantEntry*, std::string> grant_lines_;
  std::shared_ptr<const policy::Snapshot> snapshot_;
  std::shared_ptr<policy::RateLimiter> limiter_;
  bool owns_limiter_;
  bool insecure_;
};

}  // namespace fedproxy::core
