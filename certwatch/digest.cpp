#include "certwatch/digest.hpp"

#include <mbedtls/sha256.h>

namespace fedproxy::certwatch {

std::string hex_lower(const unsigned char* data, size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0x0f]);
  }
  return out;
}

std::string sha256_hex(const unsigned char* data, size_t len) {
  unsigned char digest[32];
  if (data == nullptr || len == 0 || mbedtls_sha256(data, len, digest, 0) != 0) return {};
  return hex_lower(digest, sizeof digest);
}

}  // namespace fedproxy::certwatch
