// The project's one JSON string escaper and one strict JSON reader (std and
// picojson only, so every layer may use them: policy, certwatch-free code,
// proxy/http1, proxy/app).
#pragma once

#include <picojson.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::config::json {

// ---------------------------------------------------------------------------
// Escaping. The result is always valid JSON and safe to print on a terminal:
//  - '"' and '\\' escaped; \b \f \n \r \t as such; other C0 controls, DEL,
//    C1 controls (U+0080..U+009F) and U+2028/U+2029 as \u00XX / \u20XX;
//  - invalid UTF-8 becomes one \ufffd per maximal ill-formed subpart
//    (Unicode's "substitution of maximal subparts": "\xE2\x82" is one,
//    "\xFF\xFE" two); overlongs, surrogates and code points past U+10FFFF
//    are invalid;
//  - other valid UTF-8 is kept as is, or with NonAscii::escape written as
//    \uXXXX (surrogate pairs above U+FFFF), making the output pure ASCII.
enum class NonAscii { keep, escape };

// Appends the escaped text without quotes.
void append_escaped(std::string& out, std::string_view s, NonAscii mode = NonAscii::keep);
// The escaped text without quotes.
std::string escape(std::string_view s, NonAscii mode = NonAscii::keep);
// A complete string literal, with quotes.
std::string quote(std::string_view s, NonAscii mode = NonAscii::keep);
void append_quoted(std::string& out, std::string_view s, NonAscii mode = NonAscii::keep);

// ---------------------------------------------------------------------------
// Strict reading: exactly one JSON value (a UTF-8 byte order mark before it
// is tolerated), nothing but whitespace after it, nesting at most max_depth
// arrays/objects, no duplicate object key (picojson would keep the last one
// silently: two readers must not see two different documents), no number
// that overflows a double (picojson would throw).
struct Problem {
  enum class Kind { syntax, duplicate_key, number_out_of_range };
  Kind kind = Kind::syntax;
  // A syntax error: "line L, column C". Otherwise the value's JSON path:
  // "(root)", "node.org", "peers[1].org", "[\"odd key\"]".
  std::string where;
  std::string message;  // syntax errors start with "invalid JSON: "
};

struct ReadOptions {
  size_t max_depth = 64;
};

// Parses text into *out and appends every problem found (duplicate keys and
// numbers out of range are reported at their path and reading continues; a
// syntax error ends it). True when there is none.
bool read_strict(std::string_view text, picojson::value* out, std::vector<Problem>* problems,
                 const ReadOptions& options = {});

// The JSON path of a member / an element below parent ("" is the root).
std::string key_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, size_t index);

}  // namespace fedproxy::config::json
