// Internal: large buffers straight from the kernel (mmap), advised onto transparent huge pages.
// Used for volumes and 3D preprocessing grids (hundreds of MB), and by the block cache for its blocks
// (core/block_cache.hpp): the pages come zeroed, are first touched by whoever writes them, and go back
// with munmap, so glibc's heap and its dynamic mmap threshold never see them (on these VMs,
// first-touch page faults cost more than the arithmetic).
#pragma once

#include <medinfer/error.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <string>

namespace medinfer::detail {

/// Buffers at least this large use map_huge(); smaller ones are ordinary allocations.
constexpr std::size_t kHugeBufferBytes = 8u << 20;

inline std::size_t huge_rounded(std::size_t bytes) {
  constexpr std::size_t kHuge = 2u << 20;
  return (bytes + kHuge - 1) / kHuge * kHuge;
}

/// `bytes` (a multiple of the page size) of zeroed anonymous memory, advised onto transparent huge
/// pages when `huge`; throws std::bad_alloc when the kernel refuses. Release with ::munmap.
inline void* map_anonymous(std::size_t bytes, bool huge) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (huge) ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP it is plain memory
  return p;
}

/// Zeroed memory of at least `bytes`; throws std::bad_alloc when the kernel refuses.
inline void* map_huge(std::size_t bytes) { return map_anonymous(huge_rounded(bytes), true); }

/// Returns memory from map_huge(bytes) (the same `bytes`).
inline void unmap_huge(void* p, std::size_t bytes) { ::munmap(p, huge_rounded(bytes)); }

}  // namespace medinfer::detail
