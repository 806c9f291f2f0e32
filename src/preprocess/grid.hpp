// Internal: a float volume being transformed by the volume steps (src/preprocess/steps.cpp), and the
// operations on it (volume_steps.cpp).
#pragma once

#include <medinfer/preprocess.hpp>

#include "core/huge_pages.hpp"

#include <array>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace medinfer::preprocess::detail {

// Big grids straight from the kernel on huge pages (src/core/huge_pages.hpp): a 300-slice volume is
// ~300 MB, and first-touch faults on 4 KB heap pages cost more than the arithmetic.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: allocator rebinding
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= medinfer::detail::kHugeBufferBytes) return static_cast<T*>(medinfer::detail::map_huge(bytes));
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= medinfer::detail::kHugeBufferBytes) {
      medinfer::detail::unmap_huge(p, bytes);
    } else {
      std::free(p);
    }
  }
  bool operator==(const HugePageAllocator&) const { return true; }
  bool operator!=(const HugePageAllocator&) const { return false; }
};
using Floats = std::vector<float, HugePageAllocator<float>>;

// A float volume being transformed: [d][h][w].
struct Grid {
  std::size_t w = 0, h = 0, d = 0;
  Floats v;
  std::array<double, 3> spacing{1, 1, 1};
  std::array<double, 3> origin{0, 0, 0};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};
  std::size_t size() const { return w * h * d; }
  // The same geometry, no voxels (copying `v` would move hundreds of MB for nothing).
  Grid shape_only() const {
    Grid g;
    g.w = w;
    g.h = h;
    g.d = d;
    g.spacing = spacing;
    g.origin = origin;
    g.direction = direction;
    return g;
  }
};

enum class Mode { kNearest, kLinear, kArea };

/// Resamples along one axis (0 = x, 1 = y, 2 = z) to n_out samples on `threads` threads.
void resample_axis(Grid& g, int axis, std::size_t n_out, Mode mode, unsigned threads);
/// round(v) as a side length, at least 1; kResourceLimit naming step `index` above the limit.
std::size_t checked_side(std::size_t index, double v, const char* what);
/// The volume resampling mode for an interpolation; cubic is refused naming step `index`.
Mode mode_of(std::size_t index, Interpolation i);
/// Centred crop/pad along every axis (offsets floor((old - new) / 2)), like the 2D step.
void crop_or_pad(Grid& g, std::size_t w, std::size_t h, std::size_t d, float pad);
/// out(i, j, k) = in(index along each input axis), with axes permuted and flipped.
void permute_flip(Grid& g, const std::array<int, 3>& from_axis, const std::array<bool, 3>& flip);
/// The "reorient" step: axes such as "LPS" or "RAS".
void reorient(Grid& g, std::size_t index, const std::string& axes);
/// Error(kInvalidArgument) "preprocessing[index]: what".
[[noreturn]] void fail(std::size_t index, const std::string& what);

}  // namespace medinfer::preprocess::detail
