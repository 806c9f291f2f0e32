#include <medinfer/error.hpp>
#include <medinfer/image.hpp>

#include "core/block_cache.hpp"
#include "core/image_access.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace medinfer {

std::size_t bytes_per_sample(PixelType type) noexcept {
  switch (type) {
    case PixelType::kUInt8:
    case PixelType::kInt8: return 1;
    case PixelType::kUInt16:
    case PixelType::kInt16: return 2;
    case PixelType::kUInt32:
    case PixelType::kInt32:
    case PixelType::kFloat32: return 4;
    case PixelType::kFloat64: return 8;
  }
  return 0;
}

const char* to_string(PixelType type) noexcept {
  switch (type) {
    case PixelType::kUInt8: return "uint8";
    case PixelType::kInt8: return "int8";
    case PixelType::kUInt16: return "uint16";
    case PixelType::kInt16: return "int16";
    case PixelType::kUInt32: return "uint32";
    case PixelType::kInt32: return "int32";
    case PixelType::kFloat32: return "float32";
    case PixelType::kFloat64: return "float64";
  }
  return "unknown";
}

namespace {

// Pixel memory from the block cache (core/block_cache.hpp): a predict's image buffer is
// the previous one's, already mapped, instead of a fresh malloc that may page-fault.
std::shared_ptr<std::uint8_t> allocate_pixels(std::size_t bytes) {
  std::size_t capacity = 0;
  auto* p = static_cast<std::uint8_t*>(detail::acquire_block(bytes, &capacity));
  try {
    return std::shared_ptr<std::uint8_t>(p, [capacity](std::uint8_t* q) { detail::release_block(q, capacity); });
  } catch (...) {
    detail::release_block(p, capacity);
    throw;
  }
}

}  // namespace

Image::Image() = default;

Image::Image(PixelType type, std::size_t width, std::size_t height, std::size_t channels)
    : Image(type, width, height, channels, Uninitialized{}) {
  std::memset(pixels_.get(), 0, bytes_);
}

Image::Image(PixelType type, std::size_t width, std::size_t height, std::size_t channels, Uninitialized)
    : type_(type), width_(width), height_(height), channels_(channels),
      bytes_(detail::buffer_bytes("Image", "channels", type, width, height, channels)) {
  pixels_ = allocate_pixels(bytes_);
}

std::size_t detail::buffer_bytes(const char* what, const char* third, PixelType type, std::size_t width,
                                 std::size_t height, std::size_t n) {
  if (width == 0 || height == 0 || n == 0) {
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": width, height and " + third +
                                                 " must be > 0 (got " + std::to_string(width) + "x" +
                                                 std::to_string(height) + "x" + std::to_string(n) + ")");
  }
  const std::size_t limit = std::numeric_limits<std::size_t>::max() / 8;
  if (width > limit / height || width * height > limit / n) {
    throw Error(ErrorCode::kResourceLimit, std::string(what) + ": dimensions overflow the address space");
  }
  return width * height * n * bytes_per_sample(type);
}

Image detail::ImageAccess::uninitialized(PixelType type, std::size_t width, std::size_t height, std::size_t channels) {
  return Image(type, width, height, channels, Image::Uninitialized{});
}

Image Image::from_buffer(const void* data, PixelType type, std::size_t width, std::size_t height,
                         std::size_t channels) {
  if (data == nullptr) throw Error(ErrorCode::kInvalidArgument, "Image::from_buffer: data is null");
  Image image(type, width, height, channels, Uninitialized{});
  std::memcpy(image.pixels_.get(), data, image.size_bytes());
  return image;
}

Image Image::borrow(std::shared_ptr<const void> owner, const void* data, PixelType type, std::size_t width,
                    std::size_t height, std::size_t channels) {
  if (data == nullptr) throw Error(ErrorCode::kInvalidArgument, "Image::borrow: data is null");
  Image image;
  image.bytes_ = detail::buffer_bytes("Image", "channels", type, width, height, channels);
  image.type_ = type;
  image.width_ = width;
  image.height_ = height;
  image.channels_ = channels;
  // Shares owner's control block, points at data; const is restored by mutable_data() never writing it.
  image.pixels_ = std::shared_ptr<std::uint8_t>(std::move(owner), static_cast<std::uint8_t*>(const_cast<void*>(data)));
  image.borrowed_ = true;
  return image;
}

std::size_t Image::size_bytes() const noexcept { return pixels_ ? bytes_ : 0; }

const void* Image::data() const noexcept { return pixels_.get(); }

void* Image::mutable_data() {
  if (!pixels_) return nullptr;
  if (borrowed_ || pixels_.use_count() > 1) {
    std::shared_ptr<std::uint8_t> own = allocate_pixels(bytes_);
    std::memcpy(own.get(), pixels_.get(), bytes_);
    pixels_ = std::move(own);
    borrowed_ = false;
  }
  return pixels_.get();
}

void Image::set_spacing(const std::array<double, 2>& spacing) {
  for (double s : spacing) {
    if (!std::isfinite(s) || s <= 0.0) {
      throw Error(ErrorCode::kInvalidArgument, "Image: spacing must be finite and > 0 (got " +
                                                   std::to_string(s) + ")");
    }
  }
  spacing_ = spacing;
}

void Image::set_origin(const std::array<double, 3>& origin) {
  for (double v : origin) {
    if (!std::isfinite(v)) throw Error(ErrorCode::kInvalidArgument, "Image: origin must be finite");
  }
  origin_ = origin;
}

void Image::set_direction(const std::array<double, 9>& direction) {
  for (double v : direction) {
    if (!std::isfinite(v)) throw Error(ErrorCode::kInvalidArgument, "Image: direction must be finite");
  }
  direction_ = direction;
}

}  // namespace medinfer
