#include "core/block_cache.hpp"

#include "core/huge_pages.hpp"

#include <sys/mman.h>

#include <mutex>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEDINFER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MEDINFER_ASAN 1
#endif

namespace medinfer::detail {
namespace {

#ifdef MEDINFER_ASAN
// Under AddressSanitizer (the fuzzer) every block is an exact-size heap allocation, so an over-read
// of the file bytes or the decoded cells hits a redzone instead of the rest of a mapped block.
constexpr bool kExactBlocks = true;
#else
constexpr bool kExactBlocks = false;
#endif

constexpr std::size_t kGranule = 64u << 10;          // mapped sizes are multiples of this
constexpr std::size_t kMaxCachedBlocks = 32;         // enough for 8 threads' 4 per-image buffers
constexpr std::size_t kMaxCachedBytes = 96u << 20;   // what the library may keep mapped while idle
constexpr std::size_t kMaxBlockCached = 32u << 20;   // larger blocks are unmapped when released
constexpr std::size_t kHugeAdvice = 2u << 20;        // blocks this large are advised onto huge pages

// One process-wide cache under a mutex: a handful of lock operations per image, and blocks survive the
// short-lived worker threads of apply_batch / read_series (a per-thread cache would start cold in
// each and map fresh pages every time).
struct Cache {
  std::mutex mutex;
  void* blocks[kMaxCachedBlocks] = {};
  std::size_t sizes[kMaxCachedBlocks] = {};
  std::size_t count = 0, bytes = 0;

  void remove(std::size_t i) {
    bytes -= sizes[i];
    blocks[i] = blocks[count - 1];
    sizes[i] = sizes[count - 1];
    --count;
  }
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: blocks may be released during static destruction
  return *c;
}

}  // namespace

void* acquire_block(std::size_t bytes, std::size_t* capacity) {
  if (bytes < kBlockMinBytes || kExactBlocks) {
    *capacity = bytes;
    return ::operator new(bytes == 0 ? 1 : bytes);
  }
  const std::size_t want = (bytes + kGranule - 1) / kGranule * kGranule;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    // Best fit among blocks at most twice the size (a large block is not spent on a small need).
    std::size_t best = c.count;
    for (std::size_t i = 0; i < c.count; ++i) {
      if (c.sizes[i] >= want && c.sizes[i] <= 2 * want && (best == c.count || c.sizes[i] < c.sizes[best])) best = i;
    }
    if (best != c.count) {
      void* p = c.blocks[best];
      *capacity = c.sizes[best];
      c.remove(best);
      return p;
    }
  }
  void* p = map_anonymous(want, want >= kHugeAdvice);
  *capacity = want;
  return p;
}

void release_block(void* p, std::size_t capacity) noexcept {
  if (!p) return;
  if (capacity < kBlockMinBytes || kExactBlocks) {
    ::operator delete(p);
    return;
  }
  if (capacity <= kMaxBlockCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    // Make room by dropping larger cached blocks (the common sizes stay).
    while (c.count > 0 && (c.count == kMaxCachedBlocks || c.bytes + capacity > kMaxCachedBytes)) {
      std::size_t largest = 0;
      for (std::size_t i = 1; i < c.count; ++i) {
        if (c.sizes[i] > c.sizes[largest]) largest = i;
      }
      if (c.sizes[largest] <= capacity) break;
      void* drop = c.blocks[largest];
      const std::size_t drop_size = c.sizes[largest];
      c.remove(largest);
      ::munmap(drop, drop_size);
    }
    if (c.count < kMaxCachedBlocks && c.bytes + capacity <= kMaxCachedBytes) {
      c.blocks[c.count] = p;
      c.sizes[c.count] = capacity;
      ++c.count;
      c.bytes += capacity;
      return;
    }
  }
  ::munmap(p, capacity);
}

}  // namespace medinfer::detail
