// A counting replacement of the global allocation functions, so tests can
// prove that evaluate() allocates nothing on the allow path. Kept in its own
// translation unit: defined next to their callers, GCC inlines them and
// warns (-Wmismatched-new-delete) about the malloc/free pairing.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "alloc_counter.hpp"

namespace {
std::atomic<long> g_allocations{0};

void* counted(std::size_t n) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace

long allocation_count() { return g_allocations.load(std::memory_order_relaxed); }

void* operator new(std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
