#include "config/join_token.hpp"

#include <sys/random.h>

#include <mbedtls/sha256.h>

#include <array>
#include <cerrno>
#include <vector>

namespace fedproxy::config {

namespace {
constexpr size_t kIdHex = 16;
constexpr size_t kSecretHex = 64;
constexpr size_t kPinHex = 64;

std::string hex(const unsigned char* data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0xf];
  }
  return out;
}

bool is_hex(std::string_view s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool fill_random(unsigned char* out, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::getrandom(out + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

std::string format_join_token(const JoinToken& t) {
  return std::string(kJoinTokenPrefix) + "." + t.id + "." + t.secret + "." + t.ca_pin;
}

std::optional<JoinToken> parse_join_token(std::string_view text) {
  std::vector<std::string_view> parts;
  while (parts.size() < 5) {
    const size_t dot = text.find('.');
    parts.push_back(text.substr(0, dot));
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
  }
  if (parts.size() != 4 || parts[0] != kJoinTokenPrefix) return std::nullopt;
  if (!is_hex(parts[1], kIdHex) || !is_hex(parts[2], kSecretHex) || !is_hex(parts[3], kPinHex)) return std::nullopt;
  return JoinToken{std::string(parts[1]), std::string(parts[2]), std::string(parts[3])};
}

std::optional<JoinToken> new_join_token(std::string ca_pin) {
  std::array<unsigned char, kIdHex / 2> id{};
  std::array<unsigned char, kSecretHex / 2> secret{};
  if (!fill_random(id.data(), id.size()) || !fill_random(secret.data(), secret.size())) return std::nullopt;
  return JoinToken{hex(id.data(), id.size()), hex(secret.data(), secret.size()), std::move(ca_pin)};
}

std::string secret_digest(std::string_view secret) {
  std::array<unsigned char, 32> digest{};
  mbedtls_sha256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest.data(), 0);
  return hex(digest.data(), digest.size());
}

bool digests_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace fedproxy::config
