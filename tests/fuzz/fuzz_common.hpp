// Shared bits of the libFuzzer targets: an invariant check that aborts with
// a message (libFuzzer then saves the input as a crash), and a tiny
// deterministic byte source for fuzzer-chosen split points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::fuzz {

[[noreturn]] inline void invariant_failed(const char* expr, const char* file, int line, const char* what) {
  std::fprintf(stderr, "\n==fuzz== INVARIANT VIOLATED: %s\n==fuzz==   at %s:%d\n==fuzz==   %s\n", expr, file,
               line, what != nullptr ? what : "");
  std::fflush(stderr);
  std::abort();
}

// Like assert(), but also in release builds and with a reason.
#define FUZZ_CHECK(cond, what)                                                     \
  do {                                                                             \
    if (!(cond)) ::fedproxy::fuzz::invariant_failed(#cond, __FILE__, __LINE__, what); \
  } while (0)

// Piece sizes for feeding an input in parts. The strategy comes from the
// first input byte so that the fuzzer explores splits along with content:
//   0: all at once        1: byte by byte       2: fixed step 1..32
//   3: pseudo-random sizes 1..16 (xorshift seeded from the byte)
//   4: pseudo-random sizes 1..256
class Splitter {
 public:
  explicit Splitter(uint8_t control) : mode_(control % 5), param_(control / 5) {
    state_ = 0x9E3779B9u ^ (static_cast<uint32_t>(control) * 0x85EBCA6Bu);
    if (state_ == 0) state_ = 1;
  }
  // Next piece size (0 = everything that is left).
  size_t next() {
    switch (mode_) {
      case 0: return 0;
      case 1: return 1;
      case 2: return 1 + param_ % 32;
      case 3: return 1 + rand() % 16;
      default: return 1 + rand() % 256;
    }
  }
  bool whole() const { return mode_ == 0; }

 private:
  uint32_t rand() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }
  unsigned mode_;
  unsigned param_;
  uint32_t state_;
};

inline size_t piece(size_t step, size_t left) { return step == 0 || step > left ? left : step; }

// The event trace of a parse: consecutive body pieces are one "body:" event,
// so traces of differently split inputs compare equal.
inline void append_body_event(std::vector<std::string>& events, const char* data, size_t len) {
  if (!events.empty() && events.back().rfind("body:", 0) == 0)
    events.back().append(data, len);
  else
    events.push_back("body:" + std::string(data, len));
}

}  // namespace fedproxy::fuzz
