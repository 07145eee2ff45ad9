// What the core reports upward. Library code never logs: proxy/app turns
// these into JSON log lines, metrics and audit records.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/base/decision.hpp"
#include "proxy/base/outcome.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::core {

// Views point into the session's exchange: valid during on_request_done only.
struct RequestRecord {
  const char* direction = "ingress";  // ingress | egress
  std::string_view request_id;
  std::string_view peer_address;
  const tls::PeerIdentity* peer = nullptr;
  std::string_view method;
  // Ingress: the canonical target, as authorized and forwarded (SPEC §4); the
  // raw request-target when it was refused, and on egress.
  std::string_view target;
  int status = 0;
  base::Decision decision = base::Decision::allow;
  std::string reason;    // error code when not forwarded, "" otherwise
  base::Outcome outcome = base::Outcome::completed;  // how the exchange ended (SPEC §10)
  std::string peer_slug;   // from policy, "" when unknown
  std::string grant;
  std::string resource;
  std::string entity_uri;
  uint64_t bytes_in = 0;   // request body bytes
  uint64_t bytes_out = 0;  // response body bytes
  // From the request head to the end of the response, on the monotonic
  // high-resolution clock: metrics use the nanoseconds, logs and the audit
  // the same value in (fractional) milliseconds.
  uint64_t duration_ns = 0;
  double duration_ms = 0;
};

class CoreEvents {
 public:
  virtual ~CoreEvents() = default;
  virtual void on_handshake_failed(const std::string& peer_address, const std::string& reason) = 0;
  virtual void on_request_done(const RequestRecord& record) = 0;
  // Malformed request, upstream failure, timeouts: one short line each.
  virtual void on_connection_event(const std::string& peer_address, const std::string& what,
                                   const std::string& detail) = 0;
};

}  // namespace fedproxy::core
