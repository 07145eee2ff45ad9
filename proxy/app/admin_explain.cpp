#include "proxy/app/admin_explain.hpp"

#include <string>

#include "proxy/net/loop.hpp"

namespace fedproxy::app {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Strict form decoding: "+" is a space, "%XX" a byte, a malformed escape an error.
base::Result<std::string> decode(std::string_view raw, std::string_view name) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '+') {
      out += ' ';
    } else if (raw[i] != '%') {
      out += raw[i];
    } else {
      const int hi = i + 2 < raw.size() ? hex_digit(raw[i + 1]) : -1;
      const int lo = i + 2 < raw.size() ? hex_digit(raw[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return base::make_error(base::Errc::invalid, std::string(name) + " holds a malformed %-escape");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

}  // namespace

core::ExplainSetup explain_setup(const Snapshot& snap) {
  core::ExplainSetup setup;
  setup.policy = snap.policy;
  setup.http = snap.config.http;
  setup.insecure = snap.server_tls == nullptr;
  if (snap.server_tls) setup.ca_bundle_spki = snap.server_tls->bundle().ca_spki_sha256();
  return setup;
}

base::Result<core::ExplainQuery> parse_explain_query(std::string_view query) {
  core::ExplainQuery q;
  bool seen_peer = false, seen_method = false, seen_target = false, seen_source = false;
  size_t pos = 0;
  while (pos <= query.size() && !query.empty()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view piece = query.substr(pos, end - pos);
    pos = end + 1;
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    const std::string_view key = piece.substr(0, eq);
    auto value = decode(eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1), key);
    if (!value) return value.error();
    auto once = [&](bool& seen) -> base::Status {
      if (seen) return base::make_error(base::Errc::invalid, std::string(key) + " is given twice");
      seen = true;
      return base::ok_status();
    };
    base::Status ok = base::ok_status();
    if (key == "peer") {
      ok = once(seen_peer);
      q.peer = *value;
    } else if (key == "method") {
      ok = once(seen_method);
      q.method = *value;
    } else if (key == "target") {
      ok = once(seen_target);
      q.target = *value;
    } else if (key == "source") {
      ok = once(seen_source);
      q.source = *value;
    } else if (key == "grant") {
      if (q.grant) return base::make_error(base::Errc::invalid, "grant is given twice");
      q.grant = *value;
    } else {
      return base::make_error(base::Errc::invalid,
                              "unknown parameter '" + std::string(key) + "' (peer, method, target, grant, source)");
    }
    if (!ok) return ok.error();
  }
  if (auto problem = core::explain_query_problem(q)) return base::make_error(base::Errc::invalid, *problem);
  return q;
}

core::AdminResponse handle_explain(const core::AdminRequest& req, const Snapshot& snap) {
  if (req.method != "GET" && req.method != "HEAD") {
    return core::AdminResponse::error(405, "method_not_allowed", "Use GET /v1/explain.", "Allow: GET, HEAD\r\n");
  }
  if (!snap.policy) {
    return core::AdminResponse::error(409, "conflict",
                                      "authenticate_only: there is no peer or grant policy to explain.");
  }
  auto query = parse_explain_query(req.query);
  if (!query) {
    return core::AdminResponse::error(
        400, "bad_request", "GET /v1/explain?peer=ORG&method=M&target=T[&grant=ID][&source=IP]: " + query.message() + ".");
  }
  core::AdminResponse r;
  r.body = core::explanation_json(core::explain(explain_setup(snap), *query, net::Loop::unix_ms())) + "\n";
  return r;
}

}  // namespace fedproxy::app
