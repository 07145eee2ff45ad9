// parse_grant / to_json (config/grant.hpp). The field rules and their
// wording are SPEC §4's (docs/policy.md repeats the choices where the spec
// is silent): id, peer, resources and status are required; methods default
// to ["GET", "HEAD"], max_rows_per_query to 500, rate_limit.burst to
// ceil(rps); an empty source_cidrs is refused (it would lock everyone out).

#include "config/grant.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>

#include "config/validate.hpp"

namespace fedproxy::config {

using detail::quote;
using detail::type_name;
using picojson::array;
using picojson::object;
using picojson::value;

namespace {

constexpr int64_t kMaxMaxRows = 10000;
constexpr double kMaxRps = 1e6;
constexpr int64_t kMaxBurst = 1000000;
constexpr int64_t kMaxRequestsPerDay = 1000000000000;      // 1e12
constexpr int64_t kMaxBytesPerDay = 1000000000000000000;  // 1e18

const std::vector<std::string_view> kGrantKeys = {
    "id",          "peer",   "resources",          "excluded_resources", "methods",
    "filters",     "max_rows_per_query", "rate_limit", "quota", "source_cidrs", "expires_at",
    "status",      "approved_sensitive", "enforce",    "_comment"};
const std::vector<std::string_view> kRateLimitKeys = {"rps", "burst"};
const std::vector<std::string_view> kQuotaKeys = {"requests_per_day", "bytes_per_day"};

bool valid_grant_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~';
    if (!ok) return false;
  }
  return true;
}

bool valid_method(std::string_view m) {
  if (m.empty() || m.size() > 32) return false;
  if (!(m[0] >= 'A' && m[0] <= 'Z')) return false;
  for (char c : m) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

class GrantReader {
 public:
  GrantReader(const object& o, GrantParse& out) : o_(o), out_(out), g_(out.grant) {}

  void run() {
    // id first: every message names it.
    if (const value* v = member("id"); v && v->is<std::string>()) {
      g_.id = v->get<std::string>();
      name_ = "grant " + quote(g_.id);
      if (!valid_grant_id(g_.id)) {
        add("id", "id must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~ (a UUID, for example)");
      }
    } else {
      name_ = "grant " + g_.where;
      add("id", v ? std::string("id must be a string, got ") + type_name(*v) : "id is required");
    }
    for (const auto& [key, _] : o_) {
      if (std::find(kGrantKeys.begin(), kGrantKeys.end(), key) != kGrantKeys.end()) continue;
      std::string msg = "unknown key " + quote(key);
      if (auto near = detail::closest(key, kGrantKeys)) msg += "; did you mean " + quote(*near) + "?";
      add(key, msg);
    }
    read_peer();
    read_status();
    read_bool("approved_sensitive", g_.approved_sensitive);
    read_bool("enforce", g_.enforce);
    read_resources();
    read_excluded();
    read_methods();
    read_filters();
    read_max_rows();
    if (const value* v = member("rate_limit"); v && !v->is<picojson::null>()) read_rate_limit(*v);
    if (const value* v = member("quota"); v && !v->is<picojson::null>()) read_quota(*v);
    read_source_cidrs();
    read_expires_at();
  }

 private:
  const object& o_;
  GrantParse& out_;
  Grant& g_;
  std::string name_;  // "grant \"id\"", or "grant grants[3]" without a string id
  bool resources_ok_ = false;  // filters are checked against a valid list only

  const value* member(std::string_view key) const {
    auto it = o_.find(std::string(key));
    return it == o_.end() ? nullptr : &it->second;
  }

  void add(std::string_view field, const std::string& msg) {
    out_.problems.push_back({g_.where + "." + std::string(field), name_ + ": " + msg});
  }

  // A list of unique non-empty strings. nullopt after reporting.
  std::optional<std::vector<std::string>> string_list(std::string_view field, const value& v) {
    if (!v.is<array>()) {
      add(field, std::string(field) + " must be an array of strings, got " + type_name(v));
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (const value& item : v.get<array>()) {
      if (!item.is<std::string>() || item.get<std::string>().empty()) {
        add(field, std::string(field) + " must contain only non-empty strings, got " +
                       (item.is<std::string>() ? std::string("\"\"") : type_name(item)));
        ok = false;
        continue;
      }
      const std::string& s = item.get<std::string>();
      if (std::find(out.begin(), out.end(), s) != out.end()) {
        add(field, std::string(field) + " lists " + quote(s) + " twice");
        ok = false;
        continue;
      }
      out.push_back(s);
    }
    if (!ok) return std::nullopt;
    return out;
  }

  void read_bool(std::string_view key, bool& out) {
    if (const value* v = member(key)) {
      if (v->is<bool>()) {
        out = v->get<bool>();
      } else {
        add(key, std::string(key) + " must be true or false, got " + type_name(*v));
      }
    }
  }

  void read_peer() {
    if (const value* v = member("peer")) {
      if (v->is<std::string>()) {
        g_.peer = v->get<std::string>();
      } else {
        add("peer", std::string("peer must be a string, got ") + type_name(*v));
      }
    } else {
      add("peer", "peer is required");
    }
  }

  void read_status() {
    const value* v = member("status");
    if (!v) {
      add("status", "status is required (\"pending\", \"active\" or \"revoked\")");
      return;
    }
    std::string st = v->is<std::string>() ? v->get<std::string>() : std::string();
    if (st == "active") {
      g_.status = GrantStatus::active;
    } else if (st == "pending") {
      g_.status = GrantStatus::pending;
    } else if (st == "revoked") {
      g_.status = GrantStatus::revoked;
    } else {
      add("status", "status must be \"pending\", \"active\" or \"revoked\" (got " +
                        (v->is<std::string>() ? quote(st) : std::string(type_name(*v))) + ")");
    }
  }

  void read_resources() {
    const value* v = member("resources");
    if (!v) {
      add("resources", "resources is required (the resource names this grant covers)");
      return;
    }
    if (auto list = string_list("resources", *v)) {
      if (list->empty()) {
        add("resources", "resources must not be empty");
      } else {
        resources_ok_ = true;
        g_.resources = std::move(*list);
      }
    }
  }

  void read_excluded() {
    const value* v = member("excluded_resources");
    if (!v || v->is<picojson::null>()) return;
    if (auto list = string_list("excluded_resources", *v)) {
      for (const std::string& r : *list) {
        if (std::find(g_.resources.begin(), g_.resources.end(), r) != g_.resources.end()) {
          add("excluded_resources", "resource " + quote(r) + " is both granted and excluded");
        }
      }
      g_.excluded_resources = std::move(*list);
    }
  }

  void read_methods() {
    const value* v = member("methods");
    if (!v) return;  // the default, GET and HEAD
    if (auto list = string_list("methods", *v)) {
      if (list->empty()) add("methods", "methods must not be empty");
      for (const std::string& m : *list) {
        if (!valid_method(m)) add("methods", "method " + quote(m) + " must be an uppercase token such as \"GET\"");
      }
      g_.methods = std::move(*list);
    }
  }

  void read_filters() {
    const value* v = member("filters");
    if (!v || v->is<picojson::null>()) return;
    if (!v->is<object>()) {
      add("filters", std::string("filters must be an object keyed by resource, got ") + type_name(*v));
      return;
    }
    for (const auto& [key, _] : v->get<object>()) {
      if (resources_ok_ && std::find(g_.resources.begin(), g_.resources.end(), key) == g_.resources.end()) {
        add("filters", "filter key " + quote(key) + " is not one of the grant's resources");
      }
    }
    g_.filters = detail::ascii_json(*v);
  }

  void read_max_rows() {
    const value* v = member("max_rows_per_query");
    if (!v) return;
    if (v->is<int64_t>() && v->get<int64_t>() >= 1 && v->get<int64_t>() <= kMaxMaxRows) {
      g_.max_rows_per_query = static_cast<uint32_t>(v->get<int64_t>());
    } else {
      add("max_rows_per_query", "max_rows_per_query must be an integer from 1 to " +
                                    std::to_string(kMaxMaxRows) + " (got " + v->serialize() + ")");
    }
  }

  void read_rate_limit(const value& v) {
    if (!v.is<object>()) {
      add("rate_limit", std::string("rate_limit must be an object {\"rps\": ..., \"burst\": ...}, got ") +
                            type_name(v));
      return;
    }
    const object& o = v.get<object>();
    for (const auto& [key, _] : o) {
      if (key != "rps" && key != "burst") {
        std::string msg = "unknown key rate_limit." + key;
        if (auto near = detail::closest(key, kRateLimitKeys)) msg += "; did you mean " + quote(*near) + "?";
        add("rate_limit", msg);
      }
    }
    auto rit = o.find("rps");
    if (rit == o.end()) {
      add("rate_limit", "rate_limit.rps is required");
      return;
    }
    double rps = 0;
    if (rit->second.is<int64_t>() || rit->second.is<double>()) rps = rit->second.get<double>();
    if (!(rps > 0 && rps <= kMaxRps) || !(1e6 / rps <= 1e12)) {
      add("rate_limit", "rate_limit.rps must be a number above 0 and at most 1000000 (got " +
                            rit->second.serialize() + ")");
      return;
    }
    int64_t burst = static_cast<int64_t>(std::max(1.0, std::ceil(rps)));
    if (auto bit = o.find("burst"); bit != o.end()) {
      if (!bit->second.is<int64_t>() || bit->second.get<int64_t>() < 1 || bit->second.get<int64_t>() > kMaxBurst) {
        add("rate_limit", "rate_limit.burst must be an integer from 1 to " + std::to_string(kMaxBurst) +
                              " (got " + bit->second.serialize() + ")");
        return;
      }
      burst = bit->second.get<int64_t>();
    }
    g_.rate_limit = RateLimit{rps, static_cast<uint32_t>(burst)};
  }

  void read_quota(const value& v) {
    if (!v.is<object>()) {
      add("quota", std::string("quota must be an object {\"requests_per_day\": ..., \"bytes_per_day\": ...}, got ") +
                       type_name(v));
      return;
    }
    Quota q;
    for (const auto& [key, val] : v.get<object>()) {
      const bool requests = key == "requests_per_day";
      if (!requests && key != "bytes_per_day") {
        std::string msg = "unknown key quota." + key;
        if (auto near = detail::closest(key, kQuotaKeys)) msg += "; did you mean " + quote(*near) + "?";
        add("quota", msg);
        continue;
      }
      if (val.is<picojson::null>()) continue;
      const int64_t max = requests ? kMaxRequestsPerDay : kMaxBytesPerDay;
      if (!val.is<int64_t>() || val.get<int64_t>() < 1 || val.get<int64_t>() > max) {
        add("quota", "quota." + key + " must be an integer from 1 to " + std::to_string(max) + " (got " +
                         val.serialize() + ")");
        continue;
      }
      (requests ? q.requests_per_day : q.bytes_per_day) = val.get<int64_t>();
    }
    if (!q.requests_per_day && !q.bytes_per_day) {
      add("quota", "quota needs requests_per_day or bytes_per_day (omit quota for none)");
      return;
    }
    g_.quota = q;
  }

  void read_source_cidrs() {
    const value* v = member("source_cidrs");
    if (!v || v->is<picojson::null>()) return;
    if (auto list = string_list("source_cidrs", *v)) {
      if (list->empty()) {
        add("source_cidrs", "source_cidrs must not be empty (omit it or use null to allow "
                            "any source address)");
      }
      g_.source_cidrs = std::move(*list);
    }
  }

  void read_expires_at() {
    const value* v = member("expires_at");
    if (!v || v->is<picojson::null>()) return;
    std::optional<int64_t> ms;
    if (v->is<std::string>()) ms = detail::parse_rfc3339_ms(v->get<std::string>());
    if (ms) {
      g_.expires_at = v->get<std::string>();
      g_.expires_at_ms = ms;
    } else {
      add("expires_at", "expires_at must be an RFC 3339 timestamp such as "
                        "\"2027-04-13T00:00:00Z\" (got " + v->serialize() + ")");
    }
  }
};

value string_array(const std::vector<std::string>& items) {
  array a;
  for (const auto& s : items) a.emplace_back(s);
  return value(a);
}

}  // namespace

const char* to_string(GrantStatus s) {
  switch (s) {
    case GrantStatus::active: return "active";
    case GrantStatus::revoked: return "revoked";
    case GrantStatus::pending: break;
  }
  return "pending";
}

const std::vector<std::string_view>& grant_keys() { return kGrantKeys; }

GrantParse parse_grant(const value& v, std::string where) {
  GrantParse out;
  out.grant.where = std::move(where);
  if (!v.is<object>()) {
    out.problems.push_back({out.grant.where, std::string("must be an object, got ") + type_name(v)});
    return out;
  }
  GrantReader(v.get<object>(), out).run();
  return out;
}

value to_json(const Grant& g) {
  object o;
  o["id"] = value(g.id);
  o["peer"] = value(g.peer);
  o["resources"] = string_array(g.resources);
  if (!g.excluded_resources.empty()) o["excluded_resources"] = string_array(g.excluded_resources);
  o["methods"] = string_array(g.methods);
  value filters;
  // filters is ours (ascii_json of an object): it always reads back.
  if (picojson::parse(filters, g.filters).empty() && filters.is<object>()) o["filters"] = filters;
  o["max_rows_per_query"] = value(static_cast<int64_t>(g.max_rows_per_query));
  if (g.rate_limit) {
    object rl;
    rl["rps"] = value(g.rate_limit->rps);
    rl["burst"] = value(static_cast<int64_t>(g.rate_limit->burst));
    o["rate_limit"] = value(rl);
  }
  if (g.quota) {
    object q;
    if (g.quota->requests_per_day) q["requests_per_day"] = value(*g.quota->requests_per_day);
    if (g.quota->bytes_per_day) q["bytes_per_day"] = value(*g.quota->bytes_per_day);
    o["quota"] = value(q);
  }
  if (g.source_cidrs) o["source_cidrs"] = string_array(*g.source_cidrs);
  if (g.expires_at) o["expires_at"] = value(*g.expires_at);
  o["status"] = value(to_string(g.status));
  o["approved_sensitive"] = value(g.approved_sensitive);
  o["enforce"] = value(g.enforce);
  return value(o);
}

}  // namespace fedproxy::config
