#include "core/block_cache.hpp"

#include <sys/mman.h>

#include <new>

namespace medinfer::detail {
namespace {

constexpr std::size_t kGranule = 64u << 10;         // mapped sizes are multiples of this
constexpr std::size_t kMaxCachedBlocks = 8;         // per thread
constexpr std::size_t kMaxCachedBytes = 48u << 20;  // per thread
constexpr std::size_t kHugeAdvice = 2u << 20;       // blocks this large are advised onto huge pages

struct Cache {
  void* blocks[kMaxCachedBlocks] = {};
  std::size_t sizes[kMaxCachedBlocks] = {};
  std::size_t count = 0, bytes = 0;
};

// A trivially destructible pointer stays usable during thread exit; the holder's destructor unmaps
// the cache's blocks and clears it, after which releases unmap directly.
thread_local Cache* tl_cache = nullptr;
thread_local bool tl_exited = false;
struct Holder {
  Cache cache;
  Holder() { tl_cache = &cache; }
  ~Holder() {
    tl_cache = nullptr;
    tl_exited = true;
    for (std::size_t i = 0; i < cache.count; ++i) ::munmap(cache.blocks[i], cache.sizes[i]);
  }
};

Cache* cache() {
  if (tl_exited) return nullptr;
  static thread_local Holder holder;  // constructed on first use in each thread
  return tl_cache;
}

}  // namespace

void* acquire_block(std::size_t bytes, std::size_t* capacity) {
  if (bytes < kBlockMinBytes) {
    *capacity = bytes;
    return ::operator new(bytes == 0 ? 1 : bytes);
  }
  const std::size_t want = (bytes + kGranule - 1) / kGranule * kGranule;
  if (Cache* c = cache()) {
    // Best fit among blocks not more than twice the size (a large block is not spent on a small need).
    std::size_t best = c->count;
    for (std::size_t i = 0; i < c->count; ++i) {
      if (c->sizes[i] >= want && c->sizes[i] <= 2 * want && (best == c->count || c->sizes[i] < c->sizes[best])) best = i;
    }
    if (best != c->count) {
      void* p = c->blocks[best];
      *capacity = c->sizes[best];
      c->bytes -= c->sizes[best];
      c->blocks[best] = c->blocks[c->count - 1];
      c->sizes[best] = c->sizes[c->count - 1];
      --c->count;
      return p;
    }
  }
  void* p = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (want >= kHugeAdvice) ::madvise(p, want, MADV_HUGEPAGE);
  *capacity = want;
  return p;
}

void release_block(void* p, std::size_t capacity) noexcept {
  if (!p) return;
  if (capacity < kBlockMinBytes) {
    ::operator delete(p);
    return;
  }
  Cache* c = capacity <= kMaxCachedBytes ? cache() : nullptr;
  if (c && capacity <= kMaxCachedBytes) {
    // Make room: drop the largest cached blocks until this one fits the limits.
    while (c->count > 0 && (c->count == kMaxCachedBlocks || c->bytes + capacity > kMaxCachedBytes)) {
      std::size_t largest = 0;
      for (std::size_t i = 1; i < c->count; ++i) {
        if (c->sizes[i] > c->sizes[largest]) largest = i;
      }
      if (c->sizes[largest] < capacity) break;  // keep the smaller ones; this one goes instead
      ::munmap(c->blocks[largest], c->sizes[largest]);
      c->bytes -= c->sizes[largest];
      c->blocks[largest] = c->blocks[c->count - 1];
      c->sizes[largest] = c->sizes[c->count - 1];
      --c->count;
    }
    if (c->count < kMaxCachedBlocks && c->bytes + capacity <= kMaxCachedBytes) {
      c->blocks[c->count] = p;
      c->sizes[c->count] = capacity;
      ++c->count;
      c->bytes += capacity;
      return;
    }
  }
  ::munmap(p, capacity);
}

}  // namespace medinfer::detail
