// SHA-256 fingerprints as printed by `openssl dgst -sha256`: 64 lowercase hex.
// The one place certificates and keys are hashed for identity, pins and
// trust anchors (the TLS layer and certwatch share it).
#pragma once

#include <cstddef>
#include <string>

namespace fedproxy::certwatch {

std::string hex_lower(const unsigned char* data, size_t len);

// SHA-256 of data[0, len) as 64 lowercase hex digits; "" for no data.
std::string sha256_hex(const unsigned char* data, size_t len);

}  // namespace fedproxy::certwatch
