// The public DICOM readers: stored values, and the Image a model wants (modality LUT, colour).
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include "core/log_internal.hpp"
#include "core/module_versions.hpp"
#include "core/sha256.hpp"
#include "core/block_cache.hpp"
#include "core/image_access.hpp"
#include "dicom/dicom_file.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace medinfer {
namespace detail {
std::string dcmtk_version() { return OFFIS_DCMTK_VERSION_STRING; }
}  // namespace detail

namespace dicom {
namespace {

using detail::DicomFile;
using detail::PixelFormat;

// Cell i of a stored frame as a double.
double cell_value(const std::uint8_t* cells, std::size_t i, PixelType t) {
  switch (t) {
    case PixelType::kUInt8: return cells[i];
    case PixelType::kInt8: return static_cast<std::int8_t>(cells[i]);
    case PixelType::kUInt16: { std::uint16_t v; std::memcpy(&v, cells + 2 * i, 2); return v; }
    case PixelType::kInt16: { std::int16_t v; std::memcpy(&v, cells + 2 * i, 2); return v; }
    case PixelType::kUInt32: { std::uint32_t v; std::memcpy(&v, cells + 4 * i, 4); return v; }
    case PixelType::kInt32: { std::int32_t v; std::memcpy(&v, cells + 4 * i, 4); return v; }
    case PixelType::kFloat32: { float v; std::memcpy(&v, cells + 4 * i, 4); return v; }
    case PixelType::kFloat64: { double v; std::memcpy(&v, cells + 8 * i, 8); return v; }
  }
  return 0.0;
}

// The range of stored values Bits Stored allows: MONOCHROME1 inversion maps lo..hi onto hi..lo.
std::pair<double, double> stored_range(const PixelFormat& f) {
  const unsigned bits = f.bits_allocated == 1 ? 1 : f.bits_stored;
  if (f.pixel_representation == 1) return {-std::ldexp(1.0, bits - 1), std::ldexp(1.0, bits - 1) - 1};
  return {0.0, std::ldexp(1.0, bits) - 1};
}

}  // namespace

void detail::stored_to_modality(const PixelFormat& f, const std::uint8_t* cells, float* dst, double slope,
                                double intercept, const detail::Lut* lut, bool invert) {
  const PixelType t = f.stored_type();
  const std::size_t n = f.frame_samples();
  const auto [lo, hi] = stored_range(f);
  if (lut == nullptr && !invert && t == PixelType::kInt16) {  // the common CT case, kept tight
    const auto* p = reinterpret_cast<const std::int16_t*>(cells);
    const float s = static_cast<float>(slope), b = static_cast<float>(intercept);
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(p[i]) * s + b;
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    double v = cell_value(cells, i, t);
    if (invert) v = lo + hi - v;
    dst[i] = static_cast<float>(lut ? lut->lookup(v) : v * slope + intercept);
  }
}

namespace {

void set_geometry(Image& image, const ImageHeader& h) {
  if (h.has_pixel_spacing) image.set_spacing({h.pixel_spacing[1], h.pixel_spacing[0]});
  if (h.has_position) image.set_origin(h.image_position);
  if (h.has_orientation) {
    const double* r = h.image_orientation.data();
    const double* c = h.image_orientation.data() + 3;
    image.set_direction({r[0], r[1], r[2], c[0], c[1], c[2], r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                         r[0] * c[1] - r[1] * c[0]});
  }
}

Image grayscale(DicomFile& file, std::uint32_t frame, const medinfer::detail::Block& cells, const ReadOptions& o) {
  const PixelFormat& f = file.format();
  const PixelType t = f.stored_type();
  const std::size_t n = f.frame_samples();
  const bool invert = o.invert_monochrome1 && f.photometric == "MONOCHROME1" && !f.float_data;
  const auto [lo, hi] = stored_range(f);
  if (!o.apply_modality_lut) {
    Image image = Image::from_buffer(cells.data(), t, f.columns, f.rows, 1);
    if (invert) {
      auto* dst = static_cast<std::uint8_t*>(image.mutable_data());
      const std::size_t cb = bytes_per_sample(t);
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t v = static_cast<std::int64_t>(lo + hi - cell_value(cells.data(), i, t));
        std::memcpy(dst + i * cb, &v, cb);  // little endian: the low bytes carry the value
      }
    }
    return image;
  }
  Image image = medinfer::detail::ImageAccess::uninitialized(PixelType::kFloat32, f.columns, f.rows, 1);
  const auto& lut = file.modality_lut();
  const auto [slope, intercept] = file.frame_rescale(frame);
  detail::stored_to_modality(f, cells.data(), static_cast<float*>(image.mutable_data()), slope, intercept,
                             lut ? &*lut : nullptr, invert);
  return image;
}

Image palette_rgb(DicomFile& file, const medinfer::detail::Block& cells) {
  const PixelFormat& f = file.format();
  const auto luts = file.palette();
  const bool wide = std::any_of(luts.begin(), luts.end(), [](const detail::Lut& l) { return l.bits > 8; });
  Image image(wide ? PixelType::kUInt16 : PixelType::kUInt8, f.columns, f.rows, 3);
  const std::size_t n = std::size_t{f.rows} * f.columns;
  auto* dst = static_cast<std::uint8_t*>(image.mutable_data());
  for (std::size_t i = 0; i < n; ++i) {
    const double index = cell_value(cells.data(), i, f.stored_type());
    for (int c = 0; c < 3; ++c) {
      const auto v = static_cast<std::uint16_t>(luts[c].lookup(index));
      if (wide) {
        std::memcpy(dst + (i * 3 + c) * 2, &v, 2);
      } else {
        dst[i * 3 + c] = static_cast<std::uint8_t>(v);
      }
    }
  }
  return image;
}

// YCbCr (full range, PS3.3 C.7.6.3.1.2) to RGB.
Image ybr_to_rgb(const PixelFormat& f, const medinfer::detail::Block& cells) {
  const PixelType t = f.stored_type();
  Image image(t, f.columns, f.rows, 3);
  const std::size_t n = std::size_t{f.rows} * f.columns;
  const double half = std::ldexp(1.0, f.bits_stored - 1);
  const double top = std::ldexp(1.0, f.bits_stored) - 1;
  auto* dst = static_cast<std::uint8_t*>(image.mutable_data());
  const std::size_t cb = bytes_per_sample(t);
  for (std::size_t i = 0; i < n; ++i) {
    const double y = cell_value(cells.data(), i * 3, t);
    const double cbv = cell_value(cells.data(), i * 3 + 1, t) - half;
    const double crv = cell_value(cells.data(), i * 3 + 2, t) - half;
    const double rgb[3] = {y + 1.402 * crv, y - 0.344136 * cbv - 0.714136 * crv, y + 1.772 * cbv};
    for (int c = 0; c < 3; ++c) {
      const auto v = static_cast<std::uint32_t>(std::lround(std::clamp(rgb[c], 0.0, top)));
      std::memcpy(dst + (i * 3 + c) * cb, &v, cb);
    }
  }
  return image;
}

Instance make_instance(DicomFile& file, const ReadOptions& o) {
  const ImageHeader& h = file.header();
  if (o.frame >= h.frames) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: ReadOptions::frame = {} but the object has {} frame(s)", file.source(), o.frame, h.frames));
  }
  file.require_pixels(1);
  const PixelFormat& f = file.format();
  // Zeroed: a decoder that writes less than a whole frame leaves zeros, never an earlier image's pixels.
  medinfer::detail::Block cells(f.frame_out_bytes());
  std::memset(cells.data(), 0, cells.size());
  file.decode_frame(o.frame, cells.data());

  Instance out;
  out.header = h;
  if (o.frame != 0) {
    if (auto p = file.frame_position(o.frame)) out.header.image_position = *p;
    std::tie(out.header.rescale_slope, out.header.rescale_intercept) = file.frame_rescale(o.frame);
  }
  const std::string photometric = file.stored_photometric();
  if (f.samples == 1 && !(photometric == "PALETTE COLOR" && o.convert_color)) {
    out.image = grayscale(file, o.frame, cells, o);
  } else if (f.samples == 1) {
    out.image = palette_rgb(file, cells);
  } else if (o.convert_color && (photometric == "YBR_FULL" || photometric == "YBR_FULL_422")) {
    out.image = ybr_to_rgb(f, cells);
  } else if (o.convert_color && photometric != "RGB") {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("{}: converting {} to RGB is not supported; read with convert_color = false",
                            file.source(), photometric));
  } else {
    out.image = Image::from_buffer(cells.data(), f.stored_type(), f.columns, f.rows, 3);
  }
  set_geometry(out.image, out.header);
  // No path in the log: paths often carry patient names, and log stores are rarely cleared for PHI.
  medinfer::detail::log(LogLevel::kDebug, "read a DICOM image ({}x{}, {} bits, {})", h.columns, h.rows, h.bits_stored,
                        h.transfer_syntax_uid);
  return out;
}

StoredPixels make_stored(DicomFile& file) {
  const PixelFormat& f = file.format();
  file.require_pixels(f.frames);
  StoredPixels out;
  out.type = f.stored_type();
  out.frames = f.frames;
  out.rows = f.rows;
  out.columns = f.columns;
  out.samples = f.samples;
  out.photometric = file.stored_photometric();
  out.header = file.header();
  const std::size_t frame_bytes = f.frame_out_bytes();
  out.data.resize(frame_bytes * f.frames);
  for (std::uint32_t k = 0; k < f.frames; ++k) file.decode_frame(k, out.data.data() + frame_bytes * k);
  return out;
}

}  // namespace

Instance read_instance(const std::string& path, const ReadOptions& options) {
  auto file = DicomFile::open_path(path, options);
  return make_instance(*file, options);
}

Instance read_instance_from_memory(const void* data, std::size_t size, const std::string& name,
                                   const ReadOptions& options) {
  auto file = DicomFile::open_memory(data, size, name, options);
  return make_instance(*file, options);
}

Image read_image(const std::string& path, const ReadOptions& options) { return read_instance(path, options).image; }

ImageHeader read_header(const std::string& path, const ReadOptions& options) {
  return DicomFile::open_header(path, options)->header();
}

PatientIdentifiers read_patient_identifiers(const std::string& path, const ReadOptions& options) {
  return DicomFile::open_header(path, options)->identifiers();
}

StoredPixels read_stored_pixels(const std::string& path, const ReadOptions& options) {
  auto file = DicomFile::open_path(path, options);
  return make_stored(*file);
}

StoredPixels read_stored_pixels_from_memory(const void* data, std::size_t size, const std::string& name,
                                            const ReadOptions& options) {
  auto file = DicomFile::open_memory(data, size, name, options);
  return make_stored(*file);
}

StoredStatistics statistics(const StoredPixels& pixels) {
  StoredStatistics s;
  s.sha256 = medinfer::detail::sha256_hex(
      std::string_view(reinterpret_cast<const char*>(pixels.data.data()), pixels.data.size()));
  const std::size_t n = pixels.data.size() / bytes_per_sample(pixels.type);
  if (n == 0) return s;
  double lo = cell_value(pixels.data.data(), 0, pixels.type), hi = lo, sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = cell_value(pixels.data.data(), i, pixels.type);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  s.min = lo;
  s.max = hi;
  s.mean = sum / static_cast<double>(n);
  return s;
}

std::string transfer_syntax_name(const std::string& uid) { return detail::syntax_name(uid); }
bool transfer_syntax_supported(const std::string& uid) { return detail::find_syntax(uid) != nullptr; }

}  // namespace dicom
}  // namespace medinfer
