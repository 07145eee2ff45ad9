// Fail closed while the audit log cannot be written (SPEC §10,
// audit.on_failure "reject"): wraps a listener's authorizer and, while the
// flag is set, refuses every request with 503 audit_unavailable before the
// wrapped authorizer runs (so no rate-limit token is spent on it). The
// refusal still names the peer the request came from, for logs, metrics
// and its own audit record. The flag belongs to proxy/app's audit sink.
#pragma once

#include <atomic>

#include "proxy/core/authorizer.hpp"

namespace fedproxy::core {

class AuditGate final : public Authorizer {
 public:
  // Both outlive the gate.
  AuditGate(Authorizer& inner, const std::atomic<bool>& refusing) : inner_(inner), refusing_(refusing) {}

  Verdict authorize(const RequestView& request) override;
  RequestIdentity identify(const RequestView& request) override { return inner_.identify(request); }

 private:
  Authorizer& inner_;
  const std::atomic<bool>& refusing_;
};

}  // namespace fedproxy::core
