#include "config/validate.hpp"

#include <algorithm>
#include <cstdio>

#include "config/host.hpp"
#include "config/json.hpp"

namespace fedproxy::config::detail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Canonical JSON: ASCII only (every other character as \uXXXX).
void append_string(std::string& out, const std::string& s) {
  json::append_quoted(out, s, json::NonAscii::escape);
}

void append_json(std::string& out, const picojson::value& v) {
  if (v.is<picojson::object>()) {
    out += '{';
    bool first = true;
    for (const auto& [k, child] : v.get<picojson::object>()) {
      if (!first) out += ',';
      first = false;
      append_string(out, k);
      out += ':';
      append_json(out, child);
    }
    out += '}';
  } else if (v.is<picojson::array>()) {
    out += '[';
    bool first = true;
    for (const auto& child : v.get<picojson::array>()) {
      if (!first) out += ',';
      first = false;
      append_json(out, child);
    }
    out += ']';
  } else if (v.is<std::string>()) {
    append_string(out, v.get<std::string>());
  } else {
    out += v.serialize();  // null, bool, numbers
  }
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string quote(std::string_view s) { return json::quote(s); }

std::optional<std::string> slug_error(std::string_view s) {
  static constexpr std::string_view kReserved[] = {"local",  "user",  "marketplace",
                                                   "system", "admin", "root"};
  auto slug_char = [](char c) { return (c >= 'a' && c <= 'z') || is_digit(c); };
  bool ok = !s.empty() && (s.size() == 1 || (s.size() >= 3 && s.size() <= 63));
  if (ok) {
    ok = slug_char(s.front()) && slug_char(s.back());
    for (char c : s) ok = ok && (slug_char(c) || c == '-');
  }
  if (!ok) {
    return "invalid slug " + quote(s) +
           ": must be 1 or 3 to 63 characters of a-z, 0-9 and '-', starting and ending "
           "with a letter or digit";
  }
  if (s.find("--") != std::string_view::npos) {
    return "invalid slug " + quote(s) + ": must not contain \"--\"";
  }
  for (auto r : kReserved) {
    if (s == r) return "slug " + quote(s) + " is reserved";
  }
  return std::nullopt;
}

std::optional<std::string> uri_error(std::string_view s, size_t max_bytes) {
  if (s.empty()) return "must not be empty";
  if (s.size() > max_bytes) return "URI is longer than " + std::to_string(max_bytes) + " bytes";
  size_t colon = s.find(':');
  bool scheme_ok = colon != std::string_view::npos && colon > 0 && is_alpha(s[0]);
  for (size_t i = 1; scheme_ok && i < colon; ++i) {
    char c = s[i];
    scheme_ok = is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
  }
  if (!scheme_ok) {
    return "must be an absolute URI with a scheme, e.g. \"spiffe://example.org/nodes/a\" (got " +
           quote(s) + ")";
  }
  if (colon + 1 == s.size()) return "URI " + quote(s) + " has nothing after the scheme";
  for (unsigned char c : s) {
    // URIs (and X.509 URI SANs) are ASCII: a non-ASCII byte could never
    // match a certificate, and would not survive the trip through JSON.
    if (c <= 0x20 || c >= 0x7f) {
      return "URI " + quote(s) + " must be ASCII without whitespace or control characters "
             "(percent-encode anything else)";
    }
  }
  return std::nullopt;
}

bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!(is_alpha(c) || is_digit(c) || c == '-')) return false;
    if (c == '-' && label == 0) return false;
    if (++label > 63) return false;
  }
  return label > 0 && s.back() != '-';
}

std::optional<std::string> trust_domain_error(std::string_view s) {
  bool ok = !s.empty() && s.size() <= 255;
  for (char c : s) ok = ok && ((c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '-' || c == '_');
  if (ok) return std::nullopt;
  return "must be a SPIFFE trust domain: 1 to 255 characters of a-z 0-9 . - _ (got " + quote(s) + ")";
}

std::optional<std::string_view> spiffe_trust_domain(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (!uri.starts_with(kScheme)) return std::nullopt;
  uri.remove_prefix(kScheme.size());
  return uri.substr(0, uri.find('/'));
}

bool parse_port(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

std::optional<std::string> peer_url_error(std::string_view s) {
  std::string_view rest;
  if (s.starts_with("https://")) {
    rest = s.substr(8);
  } else if (s.starts_with("http://")) {
    rest = s.substr(7);
  } else {
    return "must be an https:// URL such as \"https://partner.example:8443\" (got " + quote(s) +
           ")";
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.substr(authority.size());
  if (!path.empty() && path != "/") {
    return "must be a bare origin without path, query or fragment (got " + quote(s) + ")";
  }
  std::string error;
  if (!parse_host(authority, &error)) return error + " in " + quote(s);
  return std::nullopt;
}

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return is_digit(c) || (c >= 'a' && c <= 'f');
         });
}

std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  auto num = [&](size_t pos, size_t len, int* out) {
    if (pos + len > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (!is_digit(s[i])) return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  auto at = [&](size_t pos, char c) { return pos < s.size() && s[pos] == c; };
  int year, month, day, hour, minute, second;
  if (!num(0, 4, &year) || !at(4, '-') || !num(5, 2, &month) || !at(7, '-') ||
      !num(8, 2, &day) || !(at(10, 'T') || at(10, 't')) || !num(11, 2, &hour) || !at(13, ':') ||
      !num(14, 2, &minute) || !at(16, ':') || !num(17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  int64_t millis = 0;
  size_t pos = 19;
  if (at(pos, '.')) {
    size_t start = ++pos;
    int64_t scale = 100;
    while (pos < s.size() && is_digit(s[pos])) {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset_min = 0;
  if (at(pos, 'Z') || at(pos, 'z')) {
    if (pos + 1 != s.size()) return std::nullopt;
  } else if (at(pos, '+') || at(pos, '-')) {
    int oh, om;
    if (!num(pos + 1, 2, &oh) || !at(pos + 3, ':') || !num(pos + 4, 2, &om)) return std::nullopt;
    if (oh > 23 || om > 59 || pos + 6 != s.size()) return std::nullopt;
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  if (second == 60) {  // leap second: the last instant of that minute
    second = 59;
    millis = 999;
  }
  int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  return secs * 1000 + millis;
}

const char* type_name(const picojson::value& v) {
  if (v.is<picojson::null>()) return "null";
  if (v.is<bool>()) return "a boolean";
  if (v.is<int64_t>()) return "an integer";
  if (v.is<double>()) return "a number";
  if (v.is<std::string>()) return "a string";
  if (v.is<picojson::array>()) return "an array";
  return "an object";
}

std::string ascii_json(const picojson::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::optional<std::string_view> closest(std::string_view word,
                                        const std::vector<std::string_view>& candidates) {
  if (word.size() > 64) return std::nullopt;
  std::optional<std::string_view> best;
  size_t best_d = 3;
  for (auto c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d && d < c.size()) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace fedproxy::config::detail
