#include <medinfer/error.hpp>
#include <medinfer/volume.hpp>

#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace medinfer {
namespace {

// Zeroed storage. Volumes run to hundreds of MB: on 4 KB pages, first-touch page faults cost more
// than decoding the series (measured: ~60 % of a 300-slice read on these VMs), so large buffers
// are 2 MB aligned and advised onto transparent huge pages.
std::shared_ptr<std::uint8_t> allocate_zeroed(std::size_t n) {
  constexpr std::size_t kHuge = 2u << 20;
  if (n >= 4 * kHuge) {
    // Straight from the kernel: already zero (no serial memset over hundreds of MB; the pages are
    // first touched by whoever writes them, on all cores), on huge pages where THP allows, and
    // returned with munmap, so glibc's own heap and thresholds never see it.
    const std::size_t rounded = (n + kHuge - 1) / kHuge * kHuge;
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error(ErrorCode::kResourceLimit, "Volume: cannot allocate " + std::to_string(n) + " bytes");
    ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP it is plain memory
    return std::shared_ptr<std::uint8_t>(static_cast<std::uint8_t*>(p),
                                         [rounded](std::uint8_t* q) { ::munmap(q, rounded); });
  }
  return std::shared_ptr<std::uint8_t>(new std::uint8_t[n == 0 ? 1 : n](), std::default_delete<std::uint8_t[]>());
}

}  // namespace

Volume::Volume() = default;

Volume::Volume(PixelType type, std::size_t width, std::size_t height, std::size_t depth)
    : type_(type), width_(width), height_(height), depth_(depth) {
  if (width == 0 || height == 0 || depth == 0) {
    throw Error(ErrorCode::kInvalidArgument, "Volume: width, height and depth must be > 0 (got " +
                                                 std::to_string(width) + "x" + std::to_string(height) + "x" +
                                                 std::to_string(depth) + ")");
  }
  const std::size_t limit = std::numeric_limits<std::size_t>::max() / 8;
  if (width > limit / height || width * height > limit / depth) {
    throw Error(ErrorCode::kResourceLimit, "Volume: dimensions overflow the address space");
  }
  bytes_ = width * height * depth * bytes_per_sample(type);
  voxels_ = allocate_zeroed(bytes_);
}

std::size_t Volume::size_bytes() const noexcept { return voxels_ ? bytes_ : 0; }

const void* Volume::data() const noexcept { return voxels_.get(); }

void* Volume::mutable_data() {
  if (!voxels_) return nullptr;
  if (voxels_.use_count() > 1) {
    auto copy = allocate_zeroed(bytes_);
    std::memcpy(copy.get(), voxels_.get(), bytes_);
    voxels_ = std::move(copy);
  }
  return voxels_.get();
}

Image Volume::slice(std::size_t z) const {
  if (z >= depth_) {
    throw Error(ErrorCode::kInvalidArgument,
                "Volume::slice: " + std::to_string(z) + " is past the last slice (" + std::to_string(depth_) + ")");
  }
  Image image = Image::from_buffer(voxels_.get() + z * slice_bytes(), type_, width_, height_, 1);
  image.set_spacing({spacing_[0], spacing_[1]});
  image.set_origin({origin_[0] + direction_[6] * spacing_[2] * static_cast<double>(z),
                    origin_[1] + direction_[7] * spacing_[2] * static_cast<double>(z),
                    origin_[2] + direction_[8] * spacing_[2] * static_cast<double>(z)});
  const auto& d = direction_;
  image.set_direction({d[0], d[1], d[2], d[3], d[4], d[5], d[1] * d[5] - d[2] * d[4], d[2] * d[3] - d[0] * d[5],
                       d[0] * d[4] - d[1] * d[3]});
  return image;
}

void Volume::set_spacing(const std::array<double, 3>& spacing) {
  for (double s : spacing) {
    if (!std::isfinite(s) || s <= 0.0) {
      throw Error(ErrorCode::kInvalidArgument, "Volume: spacing must be finite and > 0 (got " + std::to_string(s) + ")");
    }
  }
  spacing_ = spacing;
}

void Volume::set_origin(const std::array<double, 3>& origin) {
  for (double v : origin) {
    if (!std::isfinite(v)) throw Error(ErrorCode::kInvalidArgument, "Volume: origin must be finite");
  }
  origin_ = origin;
}

void Volume::set_direction(const std::array<double, 9>& direction) {
  for (double v : direction) {
    if (!std::isfinite(v)) throw Error(ErrorCode::kInvalidArgument, "Volume: direction must be finite");
  }
  direction_ = direction;
}

}  // namespace medinfer
