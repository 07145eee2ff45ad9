// GET /v1/explain (SPEC §12) and the setup `fedproxy policy explain` uses
// offline: core::explain over the app's current snapshot, exactly as its
// ingress would decide.
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy/app/snapshot.hpp"
#include "proxy/base/result.hpp"
#include "proxy/core/admin_server.hpp"
#include "proxy/core/explain.hpp"

namespace fedproxy::app {

// What the ingress of `snap` decides with (snap.policy must not be null).
core::ExplainSetup explain_setup(const Snapshot& snap);

// "peer=ORG&method=M&target=T[&grant=ID][&source=IP]", values
// percent-encoded ("+" is a space). A missing, repeated, unknown or
// malformed parameter is an error (400 bad_request).
base::Result<core::ExplainQuery> parse_explain_query(std::string_view query);

// The admin endpoint: 200 with the explanation (allow or deny alike), 400
// bad_request for a bad query, 409 conflict under authenticate_only (no
// policy to explain). Decided at the wall-clock time of the call.
core::AdminResponse handle_explain(const core::AdminRequest& request, const Snapshot& snap);


}  // namespace fedproxy::app
