// medinfer::Volume: a 3D scalar image (a CT/MR series) with its patient geometry.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/image.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

namespace medinfer {

/// `depth` slices of `height` rows of `width` samples, slice-major then row-major (C order
/// [z][y][x]), tightly packed. Geometry follows DICOM: `spacing` is {x (column), y (row), z (slice)}
/// in mm; `origin` is the centre of the first voxel of the first slice in patient LPS mm;
/// `direction` holds the row direction cosines, the column direction cosines, then the slice
/// direction (the unit vector from slice k to slice k+1; for a tilted gantry it is not the cross
/// product of the first two).
///
/// A value type that is cheap to copy (copy-on-write, like Image). Distinct objects may be used
/// from different threads; one object must not be mutated while another thread uses it.
class MEDINFER_API Volume {
 public:
  Volume();
  /// A zero-filled volume. Throws Error(kInvalidArgument) for a zero dimension.
  Volume(PixelType type, std::size_t width, std::size_t height, std::size_t depth);
  /// A volume over memory the caller owns, without a copy (as Image::borrow): `owner` is kept alive by
  /// the volume and its copies, the memory is only read, the first mutable_data() copies it.
  static Volume borrow(std::shared_ptr<const void> owner, const void* data, PixelType type, std::size_t width,
                       std::size_t height, std::size_t depth);

  PixelType pixel_type() const noexcept { return type_; }
  std::size_t width() const noexcept { return width_; }
  std::size_t height() const noexcept { return height_; }
  std::size_t depth() const noexcept { return depth_; }
  bool empty() const noexcept { return depth_ == 0; }
  std::size_t size_bytes() const noexcept;
  std::size_t slice_bytes() const noexcept { return width_ * height_ * bytes_per_sample(type_); }

  const void* data() const noexcept;
  /// Mutable access; detaches this volume from copies that share its buffer, and from borrowed memory.
  void* mutable_data();
  /// True while data() is memory given to borrow().
  bool borrowed() const noexcept { return borrowed_; }
  /// Slice z as an Image (a copy) carrying the slice's geometry. Throws kInvalidArgument past the end.
  Image slice(std::size_t z) const;

  const std::array<double, 3>& spacing() const noexcept { return spacing_; }
  const std::array<double, 3>& origin() const noexcept { return origin_; }
  const std::array<double, 9>& direction() const noexcept { return direction_; }
  /// Throws Error(kInvalidArgument) unless all spacings are finite and > 0.
  void set_spacing(const std::array<double, 3>& spacing);
  void set_origin(const std::array<double, 3>& origin);
  /// Throws Error(kInvalidArgument) unless the values are finite.
  void set_direction(const std::array<double, 9>& direction);

 private:
  PixelType type_ = PixelType::kFloat32;
  std::size_t width_ = 0, height_ = 0, depth_ = 0;
  std::shared_ptr<std::uint8_t> voxels_;  // large volumes sit on transparent huge pages
  std::size_t bytes_ = 0;
  bool borrowed_ = false;  // voxels_ aliases a caller's memory (borrow): never written in place
  std::array<double, 3> spacing_{1.0, 1.0, 1.0};
  std::array<double, 3> origin_{0.0, 0.0, 0.0};
  std::array<double, 9> direction_{1, 0, 0, 0, 1, 0, 0, 0, 1};
};

}  // namespace medinfer
