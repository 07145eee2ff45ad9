#include "proxy/core/request_id.hpp"

#include <cstdint>
#include <random>

namespace fedproxy::core {

std::string new_request_id() {
  // Ids must be unique, not secret: a seeded 64-bit generator is enough.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  static const char* hex = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[static_cast<size_t>(pos++)] = hex[(v >> (i * 4)) & 0xf];
    }
  };
  put(a, 16);
  put(b, 16);
  return out;
}

}  // namespace fedproxy::core
