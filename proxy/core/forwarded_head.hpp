// The request head the local app receives for an allowed request (SPEC §5):
// the peer's headers after hygiene, the authorizer's identity lines, Host,
// X-Request-Id, the forwarding lines and the authorized target, serialized.
// One function for the live session and for `policy explain`, so what
// explain reports is what the app gets, byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "config/target.hpp"
#include "proxy/core/authorizer.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::core {

// head: the parsed request (its headers are cleaned in place: hop-by-hop,
// peer-asserted identity, X-Request-Id, a stripped Authorization, a
// replaced Host). verdict: an allowed one (its header_lines grow).
// target: the canonical target (ingress) or null (egress: head.target as
// received). forwarding_lines: X-Forwarded-* / Forwarded for the peer ("" on
// egress). upgrade: a WebSocket handshake, forwarded as one.
std::string forwarded_request_head(http1::RequestHead& head, Verdict& verdict,
                                   const config::CanonicalTarget* target, std::string_view request_id,
                                   std::string_view forwarding_lines, bool upgrade);

// The message of a 400 for a refused request-target: the decision's sentence
// with the canonicalizer's detail ("... refused: encoded '/' in the path.").
std::string target_refusal_message(std::string_view decision_message, std::string_view detail);

}  // namespace fedproxy::core
