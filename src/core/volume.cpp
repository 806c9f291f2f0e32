#include <medinfer/error.hpp>
#include <medinfer/volume.hpp>

#include "core/huge_pages.hpp"
#include "core/image_access.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace medinfer {
namespace {

// Zeroed storage: large volumes straight from the kernel (src/core/huge_pages.hpp).
std::shared_ptr<std::uint8_t> allocate_zeroed(std::size_t n) {
  if (n >= detail::kHugeBufferBytes) {
    try {
      return std::shared_ptr<std::uint8_t>(static_cast<std::uint8_t*>(detail::map_huge(n)),
                                           [n](std::uint8_t* q) { detail::unmap_huge(q, n); });
    } catch (const std::bad_alloc&) {
      throw Error(ErrorCode::kResourceLimit, "Volume: cannot allocate " + std::to_string(n) + " bytes");
    }
  }
  return std::shared_ptr<std::uint8_t>(new std::uint8_t[n == 0 ? 1 : n](), std::default_delete<std::uint8_t[]>());
}

}  // namespace

Volume::Volume() = default;

Volume::Volume(PixelType type, std::size_t width, std::size_t height, std::size_t depth)
    : type_(type), width_(width), height_(height), depth_(depth), bytes_(detail::buffer_bytes("Volume", "depth", type, width, height, depth)) {
  voxels_ = allocate_zeroed(bytes_);
}

Volume Volume::borrow(std::shared_ptr<const void> owner, const void* data, PixelType type, std::size_t width,
                      std::size_t height, std::size_t depth) {
  if (data == nullptr) throw Error(ErrorCode::kInvalidArgument, "Volume::borrow: data is null");
  Volume volume;
  volume.bytes_ = detail::buffer_bytes("Volume", "depth", type, width, height, depth);
  volume.type_ = type;
  volume.width_ = width;
  volume.height_ = height;
  volume.depth_ = depth;
  volume.voxels_ = std::shared_ptr<std::uint8_t>(std::move(owner), static_cast<std::uint8_t*>(const_cast<void*>(data)));
  volume.borrowed_ = true;
  return volume;
}

std::size_t Volume::size_bytes() const noexcept { return voxels_ ? bytes_ : 0; }

const void* Volume::data() const noexcept { return voxels_.get(); }

void* Volume::mutable_data() {
  if (!voxels_) return nullptr;
  if (borrowed_ || voxels_.use_count() > 1) {
    auto copy = allocate_zeroed(bytes_);
    std::memcpy(copy.get(), voxels_.get(), bytes_);
    voxels_ = std::move(copy);
    borrowed_ = false;
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
