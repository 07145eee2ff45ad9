// A grant (SPEC §4) as a typed value: parse_grant reads ONE grant object
// (a config file's grants[i], or one posted to the management API) and
// reports every field problem; to_json writes it back (parse_grant of
// to_json(g) gives g again). What needs the whole configuration (the peer
// is configured, the resources are routed, sensitive approval, duplicate
// ids, CIDR compilation) is policy's (compile_policy).
#pragma once

#include <picojson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"

namespace fedproxy::config {

enum class GrantStatus : uint8_t { pending, active, revoked };
const char* to_string(GrantStatus s);  // "pending" | "active" | "revoked"

struct RateLimit {
  double rps = 0;      // above 0, at most 1e6
  uint32_t burst = 0;  // 1..1e6; ceil(rps) when not written
  bool operator==(const RateLimit&) const = default;
};

// A daily quota (SPEC §14): counted per UTC day, shared by replicas.
struct Quota {
  std::optional<int64_t> requests_per_day;  // 1..1e12
  std::optional<int64_t> bytes_per_day;     // 1..1e18 (request + response body bytes)
  bool operator==(const Quota&) const = default;
};

struct Grant {
  std::string id;    // 1..128 of A-Z a-z 0-9 - . _ ~
  std::string peer;  // the peer's org slug (compile_policy checks it is configured)
  std::vector<std::string> resources;           // unique, non-empty
  std::vector<std::string> excluded_resources;  // unique, none of resources
  std::vector<std::string> methods = {"GET", "HEAD"};
  // The filters object as compact ASCII-only JSON (keys sorted), what policy
  // forwards as X-Federation-Scope; its keys are among resources.
  std::string filters = "{}";
  uint32_t max_rows_per_query = 500;  // 1..10000
  std::optional<RateLimit> rate_limit;
  std::optional<Quota> quota;
  std::optional<std::vector<std::string>> source_cidrs;  // nullopt = any source; text as written
  std::optional<std::string> expires_at;                 // RFC 3339, as written
  std::optional<int64_t> expires_at_ms;                  // expires_at in Unix milliseconds
  GrantStatus status = GrantStatus::pending;
  bool approved_sensitive = false;
  bool enforce = true;
  std::string where;  // "grants[3]", for messages
  bool operator==(const Grant&) const = default;
};

struct GrantParse {
  Grant grant;  // every valid field; the others keep their defaults
  // Every field problem: where = "<where>.<field>", the message starting
  // with the grant's name ("grant \"<id>\": ..."). Empty: the grant is valid.
  std::vector<ConfigProblem> problems;
};

GrantParse parse_grant(const picojson::value& v, std::string where);

// Every field written, defaults included.
picojson::value to_json(const Grant& g);

// The fields of a grant object, in the order parse_grant checks them.
const std::vector<std::string_view>& grant_keys();

}  // namespace fedproxy::config
