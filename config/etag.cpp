#include "config/etag.hpp"

#include <mbedtls/sha256.h>

#include <array>

namespace fedproxy::config {

std::string canonical_json(const picojson::value& v) { return v.serialize(); }

std::string sha256_hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::array<unsigned char, 32> digest{};
  mbedtls_sha256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(), 0);
  std::string hex;
  hex.reserve(64);
  for (unsigned char b : digest) {
    hex += kHex[b >> 4];
    hex += kHex[b & 0xf];
  }
  return hex;
}

std::string object_digest(const picojson::value& v) { return sha256_hex(canonical_json(v)); }

std::string etag(const picojson::value& v) { return "\"" + object_digest(v) + "\""; }

}  // namespace fedproxy::config
