// How one request ended (SPEC §10): every audit record carries exactly one.
#pragma once

#include <string_view>

namespace fedproxy::base {

enum class Outcome {
  completed,         // the whole response reached the client (a local answer included)
  denied,            // refused by fedproxy (policy, malformed, limits): a 4xx of ours
  client_aborted,    // the client closed or reset before the response ended
  client_timeout,    // the client made no progress within its deadline
  upstream_error,    // the app (or peer) failed: refused, reset, invalid response
  upstream_timeout,  // the app (or peer) did not answer within its deadline
  shutdown_cut,      // still running when the shutdown grace ran out
};

constexpr std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::completed: return "completed";
    case Outcome::denied: return "denied";
    case Outcome::client_aborted: return "client_aborted";
    case Outcome::client_timeout: return "client_timeout";
    case Outcome::upstream_error: return "upstream_error";
    case Outcome::upstream_timeout: return "upstream_timeout";
    case Outcome::shutdown_cut: return "shutdown_cut";
  }
  return "completed";
}

}  // namespace fedproxy::base
