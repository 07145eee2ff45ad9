// The joiner's side of a join (SPEC §13), blocking: run on a thread of its
// own, never on an event loop. Connects to the inviter's peering listener
// (TLS 1.3), fetches its CA certificate(s), and sends the join request only
// when one of them has the token's pin AND the certificate this very
// connection presented chains to it; else nothing is sent.
#pragma once

#include <string>

namespace fedproxy::app {

struct JoinAttempt {
  std::string host;
  std::string port;
  std::string ca_pin;     // 64 lowercase hex
  std::string body;       // the POST /v1/join body (holds the secret)
  int timeout_ms = 10000; // per read
};

struct JoinReply {
  // 0: no answer: `error` says why (`peer_unavailable`, `peer_identity_mismatch`).
  int status = 0;
  std::string body;
  std::string error;
  std::string message;
};

JoinReply perform_join(const JoinAttempt& attempt);

}  // namespace fedproxy::app
