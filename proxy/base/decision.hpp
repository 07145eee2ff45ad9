// What fedproxy decided about one request: the label of logs, metrics and
// audit records. An enum, so no code compares decision strings.
#pragma once

#include <string_view>

namespace fedproxy::base {

enum class Decision {
  allow,        // forwarded (or answered by fedproxy for anyone, the node manifest)
  deny,         // refused by policy, identity or request hygiene (4xx)
  shadow_deny,  // policy would deny, forwarded because the grant is in shadow mode
  error,        // not forwarded because something failed (5xx of ours)
};

constexpr std::string_view to_string(Decision d) {
  switch (d) {
    case Decision::allow: return "allow";
    case Decision::deny: return "deny";
    case Decision::shadow_deny: return "shadow_deny";
    case Decision::error: return "error";
  }
  return "error";
}

}  // namespace fedproxy::base
