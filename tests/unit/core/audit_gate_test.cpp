// AuditGate: while the audit sink's refusing flag is set, every request is
// denied with 503 audit_unavailable (decision "error") before the wrapped
// authorizer decides; the refusal still names the peer. Otherwise the
// wrapped authorizer's verdict passes through untouched.
#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "proxy/core/audit_gate.hpp"

using namespace fedproxy;
using namespace fedproxy::core;

namespace {

class CountingAuthorizer final : public Authorizer {
 public:
  int authorized = 0;
  Verdict authorize(const RequestView&) override {
    ++authorized;
    Verdict v;
    v.peer = "partner-labs";
    v.header_lines = "X-Test: 1\r\n";
    return v;
  }
  RequestIdentity identify(const RequestView&) override { return {"partner-labs", "spiffe://p.example/n"}; }
};

}  // namespace

TEST_CASE("AuditGate: refuses with 503 audit_unavailable while the flag is set, else passes through") {
  tls::PeerIdentity peer;
  http1::RequestHead head;
  head.method = "GET";
  head.target = "/api/v1/tasks";
  RequestView view{peer, head, "127.0.0.1", "req-1", 0, nullptr};
  CountingAuthorizer inner;
  std::atomic<bool> refusing{false};
  AuditGate gate(inner, refusing);

  Verdict ok = gate.authorize(view);
  CHECK(ok.allow);
  CHECK(ok.header_lines == "X-Test: 1\r\n");
  CHECK(inner.authorized == 1);

  refusing = true;
  Verdict no = gate.authorize(view);
  CHECK_FALSE(no.allow);
  CHECK(no.status == 503);
  CHECK(no.code == "audit_unavailable");
  CHECK(no.reason == "audit_unavailable");
  CHECK(no.decision == base::Decision::error);
  CHECK_FALSE(no.message.empty());
  CHECK(no.peer == "partner-labs");
  CHECK(no.entity_uri == "spiffe://p.example/n");
  CHECK(no.header_lines.empty());
  CHECK(inner.authorized == 1);  // policy (and its rate limits) never ran

  CHECK(gate.identify(view).peer == "partner-labs");
  refusing = false;
  CHECK(gate.authorize(view).allow);
  CHECK(inner.authorized == 2);
}
