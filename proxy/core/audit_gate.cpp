#include "proxy/core/audit_gate.hpp"

#include <utility>

namespace fedproxy::core {

Verdict AuditGate::authorize(const RequestView& request) {
  if (!refusing_.load(std::memory_order_relaxed)) return inner_.authorize(request);
  Verdict v;
  v.allow = false;
  v.status = 503;
  v.code = "audit_unavailable";
  v.message = "The audit log cannot be written; requests are refused until it can.";
  v.decision = base::Decision::error;
  v.reason = v.code;
  RequestIdentity id = inner_.identify(request);
  v.peer = std::move(id.peer);
  v.entity_uri = std::move(id.entity_uri);
  return v;
}

}  // namespace fedproxy::core
