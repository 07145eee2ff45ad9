// Internal: text rules shared by manifest parsing and policy compilation
// (slugs, URIs, peer endpoint URLs, fingerprints, RFC 3339 timestamps) and an
// ASCII-only compact JSON writer for header values. Used by config.cpp,
// manifest.cpp and compile.cpp so that all three check and word alike.
#pragma once

#include <picojson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::config::detail {

// "\"text\"" for messages: a JSON string literal (config/json.hpp, json::quote).
std::string quote(std::string_view s);

// SPEC §3 slug rule: ^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])?$, no "--", not reserved.
std::optional<std::string> slug_error(std::string_view s);

// An absolute URI (scheme ":" rest), no whitespace or control bytes, at most
// max_bytes long (config files pass std::string_view::npos: no length cap).
inline constexpr size_t kMaxUriBytes = 2048;
std::optional<std::string> uri_error(std::string_view s, size_t max_bytes = kMaxUriBytes);

// Letters, digits and '-' in dot-separated labels of 1..63 (no '-' at either
// end of a label), at most 253 in all; no trailing dot.
bool is_dns_name(std::string_view s);

// A SPIFFE trust domain name: 1 to 255 of a-z 0-9 . - _ (SPIFFE ID spec §2.1).
std::optional<std::string> trust_domain_error(std::string_view s);

// The trust domain of a "spiffe://<trust domain>/<path>" URI; nullopt for
// any other URI.
std::optional<std::string_view> spiffe_trust_domain(std::string_view uri);

// Decimal port: 1 to 5 digits, value 0..65535.
bool parse_port(std::string_view s, uint16_t* port);

// A peer endpoint: "https://host[:port]" (http:// allowed for insecure dev mode).
std::optional<std::string> peer_url_error(std::string_view s);

// 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);

// RFC 3339 "YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)" → Unix milliseconds (UTC).
// A leap second (":60") counts as the last millisecond of that minute.
std::optional<int64_t> parse_rfc3339_ms(std::string_view s);

// "null", "a boolean", "an integer", "a number", "a string", "an array" or
// "an object", for "must be X, got Y" messages.
const char* type_name(const picojson::value& v);

// Compact JSON with every non-ASCII character written as \uXXXX (surrogate
// pairs beyond the BMP) and control bytes escaped, so the text is a valid
// HTTP header value. Object keys come out sorted (picojson::object is a map).
std::string ascii_json(const picojson::value& v);

// "did you mean" helper: the closest word within edit distance 2, if any.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates);

}  // namespace fedproxy::config::detail
