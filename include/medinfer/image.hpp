// medinfer::Image: a 2D image (one or more channels) with its pixel type and patient geometry.
#pragma once

#include <medinfer/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace medinfer {
namespace detail {
struct ImageAccess;  // the library's own constructor for pixels it writes whole (not public API)
}  // namespace detail

enum class PixelType { kUInt8, kInt8, kUInt16, kInt16, kUInt32, kInt32, kFloat32, kFloat64 };

/// Size of one sample of `type` in bytes.
MEDINFER_API std::size_t bytes_per_sample(PixelType type) noexcept;
/// "uint8", "int16", "float32", ...
MEDINFER_API const char* to_string(PixelType type) noexcept;

/// A 2D image: `height` rows of `width` pixels of `channels` interleaved samples, row-major, tightly
/// packed. Geometry follows DICOM: `spacing` is {column spacing (x), row spacing (y)} in mm; `origin`
/// is the centre of the first pixel in patient LPS mm; `direction` holds the row direction cosines,
/// then the column direction cosines, then their cross product (the slice normal).
///
/// A value type that is cheap to copy: copies share the pixel buffer until one of them asks for
/// mutable access (copy-on-write). Distinct objects may be used from different threads; one object
/// must not be mutated while another thread uses it.
class MEDINFER_API Image {
 public:
  /// An empty image (width = height = 0).
  Image();
  /// A zero-filled image. Throws Error(kInvalidArgument) for a zero dimension or zero channels.
  Image(PixelType type, std::size_t width, std::size_t height, std::size_t channels = 1);
  /// Copies `width * height * channels` samples from `data` (tightly packed, row-major).
  static Image from_buffer(const void* data, PixelType type, std::size_t width, std::size_t height,
                           std::size_t channels = 1);
  /// An image over memory the caller owns, without a copy (how the Python binding hands a numpy array
  /// to the library). `owner` is kept alive, by this image and every copy of it, for as long as they use
  /// `data`; the memory is only read: the first mutable_data() copies it into the image's own buffer.
  /// The caller must not change the memory while the image or a copy is in use. Throws
  /// Error(kInvalidArgument) for null `data` or a zero dimension.
  static Image borrow(std::shared_ptr<const void> owner, const void* data, PixelType type, std::size_t width,
                      std::size_t height, std::size_t channels = 1);

  PixelType pixel_type() const noexcept { return type_; }
  std::size_t width() const noexcept { return width_; }
  std::size_t height() const noexcept { return height_; }
  std::size_t channels() const noexcept { return channels_; }
  bool empty() const noexcept { return width_ == 0 || height_ == 0; }
  std::size_t size_bytes() const noexcept;

  const void* data() const noexcept;
  /// Mutable access; detaches this image from copies that share its buffer, and from borrowed memory.
  void* mutable_data();
  /// True while data() is memory given to borrow() (not yet copied by mutable_data()).
  bool borrowed() const noexcept { return borrowed_; }

  const std::array<double, 2>& spacing() const noexcept { return spacing_; }
  const std::array<double, 3>& origin() const noexcept { return origin_; }
  const std::array<double, 9>& direction() const noexcept { return direction_; }
  /// Throws Error(kInvalidArgument) unless both spacings are finite and > 0.
  void set_spacing(const std::array<double, 2>& spacing);
  void set_origin(const std::array<double, 3>& origin);
  /// Throws Error(kInvalidArgument) unless the values are finite.
  void set_direction(const std::array<double, 9>& direction);

 private:
  friend struct detail::ImageAccess;
  struct Uninitialized {};
  Image(PixelType type, std::size_t width, std::size_t height, std::size_t channels, Uninitialized);

  PixelType type_ = PixelType::kUInt8;
  std::size_t width_ = 0, height_ = 0, channels_ = 0;
  std::shared_ptr<std::uint8_t> pixels_;  // shared by copies until one writes
  std::size_t bytes_ = 0;
  bool borrowed_ = false;  // pixels_ aliases a caller's memory (borrow): never written in place
  std::array<double, 2> spacing_{1.0, 1.0};
  std::array<double, 3> origin_{0.0, 0.0, 0.0};
  std::array<double, 9> direction_{1, 0, 0, 0, 1, 0, 0, 0, 1};
};

}  // namespace medinfer
