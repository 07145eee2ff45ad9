#include "policy/query_params.hpp"

#include "config/uri_chars.hpp"

namespace fedproxy::policy {

namespace {

// Reads a raw query component byte by byte, %-decoded, "+" as a space. A
// "%" not followed by two hex digits is a "%" (what most frameworks do).
class ComponentReader {
 public:
  explicit ComponentReader(std::string_view raw) : raw_(raw) {}
  bool done() const { return i_ >= raw_.size(); }
  unsigned char next() {
    const char c = raw_[i_++];
    if (c == '+') return ' ';
    if (c == '%' && i_ + 1 < raw_.size()) {
      const int hi = config::detail::hex_value(raw_[i_]);
      const int lo = config::detail::hex_value(raw_[i_ + 1]);
      if (hi >= 0 && lo >= 0) {
        i_ += 2;
        return static_cast<unsigned char>(hi * 16 + lo);
      }
    }
    return static_cast<unsigned char>(c);
  }

 private:
  std::string_view raw_;
  size_t i_ = 0;
};

// One letter of a parameter name as the loosest framework compares it.
unsigned char fold(unsigned char c) {
  if (c == ' ' || c == '.') return '_';
  return config::detail::ascii_lower(c);
}

}  // namespace

bool param_key_is(std::string_view raw_key, std::string_view name) noexcept {
  ComponentReader r(raw_key);
  bool have = false;
  unsigned char c = 0;
  while (!r.done()) {  // PHP drops leading spaces
    c = r.next();
    if (c != ' ') {
      have = true;
      break;
    }
  }
  for (const char n : name) {
    if (!have || fold(c) != fold(static_cast<unsigned char>(n))) return false;
    have = !r.done();
    if (have) c = r.next();
  }
  if (!have) return true;
  // The array forms: "name[]" and "name[digits]".
  if (c != '[' || r.done()) return false;
  c = r.next();
  while (config::detail::is_digit(c) && !r.done()) c = r.next();
  return c == ']' && r.done();
}

size_t decode_component(std::string_view raw, char* out, size_t cap) noexcept {
  ComponentReader r(raw);
  size_t n = 0;
  while (!r.done()) {
    const unsigned char c = r.next();
    if (n == cap) return cap + 1;
    out[n++] = static_cast<char>(c);
  }
  return n;
}

bool value_in_range(std::string_view raw_value, uint32_t max) noexcept {
  ComponentReader r(raw_value);
  uint64_t n = 0;
  bool any = false;
  while (!r.done()) {
    const unsigned char c = r.next();
    if (!config::detail::is_digit(c)) return false;
    n = n * 10 + (c - '0');
    if (n > max) return false;
    any = true;
  }
  return any && n >= 1;
}

}  // namespace fedproxy::policy
