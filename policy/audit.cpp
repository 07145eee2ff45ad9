// Audit records (SPEC §10): formatting, the hash chain and its verifier.
//
// Line format (compact JSON, fixed key order, every line ends in "\n"):
//   request: {"ts":..,"type":"request","request_id":..,"peer":..,"entity_uri":..,
//             "grant":..,"method":..,"path":..,"resource":..,"decision":..,
//             "reason":..,"outcome":..,"status":N,"bytes_in":N,"bytes_out":N,
//             "duration_ms":N.NNN,"query_hash":..,"cert_fingerprint":..,"prev":..}
//   event:   {"ts":..,"type":"event","event":..,<field>:<string>...,"prev":..}
//   gap:     {"ts":..,"type":"event","event":"gap","lost":N,"since":..,"error":..,"prev":..}
// "prev" is the lowercase hex SHA-256 of the previous line's text without its
// newline; the first line of a file carries genesis() (64 zeros).
#include "policy/audit.hpp"

#include "config/etag.hpp"

#include <mbedtls/sha256.h>
#include <picojson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <exception>
#include <system_error>

#include "config/json.hpp"

namespace fedproxy::policy {

namespace {

// A JSON string literal (config/json.hpp): control characters (C0, DEL, C1)
// and U+2028/U+2029 escaped, invalid UTF-8 as \ufffd, so the line is always
// valid JSON and safe to print on a terminal.
void append_json_string(std::string& out, std::string_view s) { config::json::append_quoted(out, s); }

void add_key(std::string& out, std::string_view key) {
  out += ',';
  append_json_string(out, key);
  out += ':';
}

void add_string(std::string& out, std::string_view key, std::string_view value) {
  add_key(out, key);
  append_json_string(out, value);
}

template <typename Int>
void add_int(std::string& out, std::string_view key, Int value) {
  add_key(out, key);
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

// Fixed three decimals, locale-independent; NaN/inf (not JSON) become 0.
void add_millis(std::string& out, std::string_view key, double ms) {
  add_key(out, key);
  if (!std::isfinite(ms)) ms = 0;
  char buf[400];  // enough for the widest fixed-notation double
  auto res = std::to_chars(buf, buf + sizeof buf, ms, std::chars_format::fixed, 3);
  if (res.ec != std::errc()) {
    out += "0.000";
    return;
  }
  out.append(buf, res.ptr);
}

bool is_hash_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Checks one line's shape; on success *prev is its "prev". Returns "" or a
// message without the "line N: " prefix.
std::string check_line_shape(std::string_view line, std::string* prev) {
  if (line.empty()) return "empty line";
  if (line.back() == '\r') return "ends with a carriage return (were the line endings converted?)";
  if (line.front() != '{') return "not a JSON object";
  picojson::value v;
  std::string err;
  const char* end = nullptr;
  try {
    end = picojson::parse(v, line.data(), line.data() + line.size(), &err);
  } catch (const std::exception&) {  // e.g. a number out of double range
    return "not valid JSON";
  }
  if (!err.empty()) return "not valid JSON";
  if (!v.is<picojson::object>()) return "not a JSON object";
  if (end != line.data() + line.size()) return "unexpected text after the JSON object";
  const auto& obj = v.get<picojson::object>();
  auto str = [&](const char* key) -> const std::string* {
    auto it = obj.find(key);
    if (it == obj.end() || !it->second.is<std::string>()) return nullptr;
    return &it->second.get<std::string>();
  };
  const std::string* ts = str("ts");
  if (!ts) return "no \"ts\" string";
  const std::string* type = str("type");
  if (!type || (*type != "request" && *type != "event")) return "\"type\" is not \"request\" or \"event\"";
  if (*type == "event" && !str("event")) return "event line has no \"event\" string";
  const std::string* p = str("prev");
  if (!p) return "no \"prev\" string";
  if (!is_hash_hex(*p)) return "\"prev\" is not 64 lowercase hex digits";
  *prev = *p;
  return "";
}

std::string line_msg(uint64_t n, const std::string& what) { return "line " + std::to_string(n) + ": " + what; }

}  // namespace

const std::string& AuditChain::genesis() {
  static const std::string g(64, '0');
  return g;
}

AuditChain::Line AuditChain::seal(std::string body) const {
  add_string(body, "prev", prev_);
  body += '}';
  Line line{std::move(body), {}};
  line.hash = config::sha256_hex(line.text);
  line.text += '\n';
  return line;
}

AuditChain::Line AuditChain::format_request(const AuditRequest& r) const {
  std::string s = "{\"ts\":";
  append_json_string(s, r.ts);
  add_string(s, "type", "request");
  add_string(s, "request_id", r.request_id);
  add_string(s, "peer", r.peer);
  add_string(s, "entity_uri", r.entity_uri);
  add_string(s, "grant", r.grant);
  add_string(s, "method", r.method);
  add_string(s, "path", r.path);
  add_string(s, "resource", r.resource);
  add_string(s, "decision", r.decision);
  add_string(s, "reason", r.reason);
  add_string(s, "outcome", r.outcome);
  add_int(s, "status", r.status);
  add_int(s, "bytes_in", r.bytes_in);
  add_int(s, "bytes_out", r.bytes_out);
  add_millis(s, "duration_ms", r.duration_ms);
  add_string(s, "query_hash", r.query_hash);
  add_string(s, "cert_fingerprint", r.cert_fingerprint);
  return seal(std::move(s));
}

AuditChain::Line AuditChain::format_event(std::string_view ts, std::string_view event,
                                          const AuditFields& fields) const {
  std::string s = "{\"ts\":";
  append_json_string(s, ts);
  add_string(s, "type", "event");
  add_string(s, "event", event);
  for (const auto& [key, value] : fields) {
    // A field may not shadow the line's own keys (a duplicate "type" or
    // "prev" would make the line ambiguous): those names get a "_" prefix.
    std::string k = key;
    while (k == "ts" || k == "type" || k == "event" || k == "prev") k.insert(0, "_");
    add_string(s, k, value);
  }
  return seal(std::move(s));
}

AuditChain::Line AuditChain::format_gap(std::string_view ts, uint64_t lost, std::string_view since,
                                        std::string_view error) const {
  std::string s = "{\"ts\":";
  append_json_string(s, ts);
  add_string(s, "type", "event");
  add_string(s, "event", "gap");
  add_int(s, "lost", lost);
  add_string(s, "since", since);
  add_string(s, "error", error);
  return seal(std::move(s));
}

std::string AuditChain::request_line(const AuditRequest& r) {
  Line line = format_request(r);
  advance(std::move(line.hash));
  return std::move(line.text);
}

std::string AuditChain::event_line(std::string_view ts, std::string_view event, const AuditFields& fields) {
  Line line = format_event(ts, event, fields);
  advance(std::move(line.hash));
  return std::move(line.text);
}

std::optional<std::string> chain_head_after(std::string_view last_line) {
  std::string prev;
  if (!check_line_shape(last_line, &prev).empty()) return std::nullopt;
  return config::sha256_hex(last_line);
}

std::string query_hash(std::string_view method, std::string_view normalized_path, std::string_view query) {
  std::string data;
  data.reserve(method.size() + normalized_path.size() + query.size() + 2);
  data.append(method);
  data += '\n';
  data.append(normalized_path);
  data += '\n';
  data.append(query);
  return config::sha256_hex(data);
}

AuditVerifyResult verify_audit_log(std::istream& in) {
  AuditVerifyResult res;
  std::string expected = AuditChain::genesis();  // hash of the previous line
  std::string line;
  // After the first prev mismatch: the stray prev value, looked for among the
  // hashes of the remaining lines to tell a reordering from an edit.
  std::string stray_prev;
  while (std::getline(in, line)) {
    ++res.lines;
    const bool complete = !in.eof();
    if (res.bad_line != 0) {
      if (config::sha256_hex(line) == stray_prev) {
        res.error += "; it is the hash of line " + std::to_string(res.lines) + " (lines were reordered)";
        return res;
      }
      continue;
    }
    if (!complete) {
      res.bad_line = res.lines;
      res.error = line_msg(res.lines, "incomplete last line (no trailing newline: the write was cut short)");
      return res;
    }
    std::string prev;
    std::string shape = check_line_shape(line, &prev);
    if (!shape.empty()) {
      res.bad_line = res.lines;
      res.error = line_msg(res.lines, shape);
      return res;
    }
    if (prev != expected) {
      res.bad_line = res.lines;
      if (res.lines == 1) {
        res.error = line_msg(1, "prev is not the genesis hash");
      } else if (prev == AuditChain::genesis()) {
        res.error = line_msg(res.lines,
                             "prev is the genesis hash but this is not the first line (two logs were "
                             "concatenated, or the writer restarted without continuing the chain)");
        return res;
      } else {
        res.error = line_msg(res.lines, "prev does not match the hash of line " + std::to_string(res.lines - 1));
      }
      stray_prev = prev;
      continue;  // scan on for a reordering
    }
    expected = config::sha256_hex(line);
  }
  if (in.bad() && res.bad_line == 0) {
    res.bad_line = res.lines + 1;
    res.error = line_msg(res.bad_line, "read error");
    return res;
  }
  if (res.bad_line != 0) {
    // No later line hashes to the stray prev: the line it points to is gone.
    if (res.bad_line == 1) {
      res.error += " (the file's first line(s) were removed or edited, or it is not a whole audit log)";
    } else {
      res.error += " (line " + std::to_string(res.bad_line - 1) +
                   " was edited, or a line was removed/reordered)";
    }
    return res;
  }
  res.ok = true;
  return res;
}

}  // namespace fedproxy::policy
