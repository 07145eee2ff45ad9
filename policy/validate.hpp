// Internal: text rules shared by manifest parsing and policy compilation
// (slugs, URIs, peer endpoint URLs, fingerprints, RFC 3339 timestamps) and an
// ASCII-only compact JSON writer for header values. config.cpp keeps its own
// copies of the first rules in an anonymous namespace; these follow the same
// wording so messages read alike.
#pragma once

#include <picojson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::policy::detail {

// "\"text\"" with quotes, backslashes and control bytes escaped, for messages.
std::string quote(std::string_view s);

// SPEC §3 slug rule: ^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])?$, no "--", not reserved.
std::optional<std::string> slug_error(std::string_view s);

// An absolute URI (scheme ":" rest), no whitespace or control bytes.
std::optional<std::string> uri_error(std::string_view s);

// A peer endpoint: "https://host[:port]" (http:// allowed for insecure dev mode).
std::optional<std::string> peer_url_error(std::string_view s);

// 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);

// RFC 3339 "YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)" → Unix milliseconds (UTC).
// A leap second (":60") counts as the last millisecond of that minute.
std::optional<int64_t> parse_rfc3339_ms(std::string_view s);

// Compact JSON with every non-ASCII character written as \uXXXX (surrogate
// pairs beyond the BMP) and control bytes escaped, so the text is a valid
// HTTP header value. Object keys come out sorted (picojson::object is a map).
std::string ascii_json(const picojson::value& v);

// "did you mean" helper: the closest word within edit distance 2, if any.
std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates);

}  // namespace fedproxy::policy::detail
