// Query parameters as application frameworks read them (SPEC §4: the row
// limit and the `_method` override). A parameter counts when any common
// framework would hand it to the app under the name policy looks for:
// fedproxy cannot know which framework the app uses, so it matches the
// union of their spellings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fedproxy::policy {

// One piece of a query between separators ("&" or ";"), as received.
struct QueryParam {
  std::string_view piece;  // "key=value" or "key"
  std::string_view key;    // still %-encoded
  std::string_view value;  // still %-encoded; empty when !has_value
  bool has_value = false;  // the piece holds "="
};

// Whether the raw key `raw_key` names `name`. Compared after %-decoding
// ("+" is a space), ASCII case-insensitively (ASP.NET, many ORMs), with
// leading spaces ignored and " " and "." read as "_" (PHP's variable-name
// mangling), and with an optional "[]" or "[digits]" suffix (PHP, Rack,
// qs): "LIMIT", "%6Cimit", "limit[]", "limit%5B0%5D" all name "limit".
bool param_key_is(std::string_view raw_key, std::string_view name) noexcept;

// Calls f(const QueryParam&) for every piece of `query` whose key names
// `name`, in order. "&" and ";" both separate (Python's cgi, Java's older
// containers and Perl read ";").
template <typename F>
void for_each_param(std::string_view query, std::string_view name, F&& f) {
  size_t pos = 0;
  for (;;) {
    size_t end = query.find_first_of("&;", pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view piece = query.substr(pos, end - pos);
    const size_t eq = piece.find('=');
    QueryParam p;
    p.piece = piece;
    p.key = piece.substr(0, eq);
    p.has_value = eq != std::string_view::npos;
    if (p.has_value) p.value = piece.substr(eq + 1);
    if (param_key_is(p.key, name)) f(static_cast<const QueryParam&>(p));
    if (end == query.size()) return;
    pos = end + 1;
  }
}

// %-decodes a raw query component ("+" is a space, a malformed escape
// stays as it is) into out[0, cap). Returns the decoded length, or cap + 1
// when it does not fit.
size_t decode_component(std::string_view raw, char* out, size_t cap) noexcept;

// The decoded value is a decimal integer from 1 to max (leading zeros
// allowed). "0", "-1", "+5", "1e5", "" and overflow are not.
bool value_in_range(std::string_view raw_value, uint32_t max) noexcept;

}  // namespace fedproxy::policy
