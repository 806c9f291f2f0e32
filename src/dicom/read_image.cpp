// DICOM Part-10 reading with DCMTK's dcmdata (not DicomImage: 3-20x slower on the hot path).
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include "core/file_util.hpp"
#include "core/log_internal.hpp"
#include "core/module_versions.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>

namespace medinfer {
namespace detail {
std::string dcmtk_version() { return OFFIS_DCMTK_VERSION_STRING; }
}  // namespace detail

namespace dicom {
namespace {

// Elements longer than this stay on disk until accessed, so a huge declared length is only ever
// allocated after we have compared it with the bytes really in the file.
constexpr Uint32 kMaxEagerElementBytes = 64 * 1024;

void init_dcmtk_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs to stderr by default; the library must never print. (This sets DCMTK's
    // process-wide logger: documented in docs/dicom.md.)
    OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
  });
  if (!dcmDataDict.isDictionaryLoaded()) {
    throw Error(ErrorCode::kInternal,
                "DCMTK's data dictionary is not loaded (is DCMDICTPATH set to a missing file?)");
  }
}

std::string tag_name(const DcmTagKey& key) {
  DcmTag tag(key);
  return fmt::format("{} ({:04X},{:04X})", tag.getTagName(), key.getGroup(), key.getElement());
}

[[noreturn]] void fail(ErrorCode code, const std::string& path, const std::string& what) {
  throw Error(code, path + ": " + what);
}

// Reads a required US attribute.
Uint16 require_us(DcmDataset& ds, const DcmTagKey& key, const std::string& path) {
  Uint16 v = 0;
  if (ds.findAndGetUint16(key, v).bad()) fail(ErrorCode::kInvalidDicom, path, "missing or malformed " + tag_name(key));
  return v;
}

Uint16 optional_us(DcmDataset& ds, const DcmTagKey& key, Uint16 fallback) {
  Uint16 v = 0;
  return ds.findAndGetUint16(key, v).good() ? v : fallback;
}

std::string optional_string(DcmDataset& ds, const DcmTagKey& key) {
  OFString s;
  if (ds.findAndGetOFString(key, s).bad()) return {};
  return std::string(s.c_str());
}

// Reads n values of a DS/FD multi-valued attribute; false when absent. Throws for present but bad.
template <std::size_t N>
bool optional_doubles(DcmDataset& ds, const DcmTagKey& key, std::array<double, N>& out, const std::string& path) {
  if (!ds.tagExistsWithValue(key)) return false;
  for (std::size_t i = 0; i < N; ++i) {
    Float64 v = 0;
    if (ds.findAndGetFloat64(key, v, static_cast<unsigned long>(i)).bad() || !std::isfinite(v)) {
      fail(ErrorCode::kInvalidDicom, path, fmt::format("{} must have {} numeric values", tag_name(key), N));
    }
    out[i] = v;
  }
  return true;
}

// Returns the file's size after checking it exists, is within the limit and starts like Part 10.
std::uint64_t check_part10_preamble(const std::string& path, const ReadOptions& options) {
  const std::uint64_t size = detail::checked_file_size(path, options.max_file_bytes, "ReadOptions::max_file_bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, path, std::string("cannot open: ") + std::strerror(errno));
  char head[132] = {};
  in.read(head, sizeof head);
  if (in.gcount() < 132 || std::memcmp(head + 128, "DICM", 4) != 0) {
    fail(ErrorCode::kInvalidDicom, path, "not a DICOM Part-10 file (no 'DICM' prefix at byte 128)");
  }
  return size;
}

}  // namespace

Instance read_instance(const std::string& path, const ReadOptions& options) {
  init_dcmtk_once();
  const std::uint64_t file_size = check_part10_preamble(path, options);

  DcmFileFormat file;
  const OFCondition loaded =
      file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kMaxEagerElementBytes, ERM_fileOnly);
  if (loaded == EC_StreamNotifyClient) {
    fail(ErrorCode::kInvalidDicom, path, "truncated: the file ends before its dataset does");
  }
  if (loaded.bad()) fail(ErrorCode::kInvalidDicom, path, std::string("DCMTK cannot parse it: ") + loaded.text());
  DcmDataset& ds = *file.getDataset();

  Instance out;
  ImageHeader& h = out.header;
  {
    OFString ts;
    file.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
    h.transfer_syntax_uid = ts.c_str();
  }
  const DcmXfer xfer(ds.getOriginalXfer());
  if (xfer.isEncapsulated() || xfer.getXfer() == EXS_Unknown) {
    const char* name = xfer.getXfer() == EXS_Unknown ? "unknown" : xfer.getXferName();
    fail(ErrorCode::kUnsupported, path,
         fmt::format("transfer syntax {} ({}) is not supported yet: only uncompressed syntaxes are read",
                     h.transfer_syntax_uid, name));
  }
  h.sop_class_uid = optional_string(ds, DCM_SOPClassUID);
  h.sop_instance_uid = optional_string(ds, DCM_SOPInstanceUID);
  h.study_instance_uid = optional_string(ds, DCM_StudyInstanceUID);
  h.series_instance_uid = optional_string(ds, DCM_SeriesInstanceUID);
  h.modality = optional_string(ds, DCM_Modality);
  h.body_part_examined = optional_string(ds, DCM_BodyPartExamined);

  DcmElement* pixel_element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, pixel_element).bad() || pixel_element == nullptr) {
    fail(ErrorCode::kInvalidDicom, path, "has no " + tag_name(DCM_PixelData) + ": not an image");
  }

  h.rows = require_us(ds, DCM_Rows, path);
  h.columns = require_us(ds, DCM_Columns, path);
  h.bits_allocated = require_us(ds, DCM_BitsAllocated, path);
  h.bits_stored = require_us(ds, DCM_BitsStored, path);
  h.pixel_signed = require_us(ds, DCM_PixelRepresentation, path) == 1;
  const Uint16 samples = optional_us(ds, DCM_SamplesPerPixel, 1);
  h.photometric_interpretation = optional_string(ds, DCM_PhotometricInterpretation);

  if (h.rows == 0 || h.columns == 0) {
    fail(ErrorCode::kInvalidDicom, path, fmt::format("{} x {} is {} x {}: an image needs both > 0",
                                                     tag_name(DCM_Rows), tag_name(DCM_Columns), h.rows, h.columns));
  }
  if (h.rows > options.max_rows || h.columns > options.max_columns) {
    fail(ErrorCode::kResourceLimit, path,
         fmt::format("{} x {} = {} x {} exceeds the limit {} x {} (ReadOptions::max_rows/max_columns)",
                     tag_name(DCM_Rows), tag_name(DCM_Columns), h.rows, h.columns, options.max_rows,
                     options.max_columns));
  }
  if (samples != 1) {
    fail(ErrorCode::kUnsupported, path,
         fmt::format("{} is {} ({}): only grayscale images are read yet", tag_name(DCM_SamplesPerPixel), samples,
                     h.photometric_interpretation));
  }
  if (h.photometric_interpretation.empty()) {
    fail(ErrorCode::kInvalidDicom, path, "missing or empty " + tag_name(DCM_PhotometricInterpretation));
  }
  if (h.photometric_interpretation != "MONOCHROME1" && h.photometric_interpretation != "MONOCHROME2") {
    fail(ErrorCode::kUnsupported, path,
         fmt::format("{} '{}' is not supported yet (MONOCHROME1/MONOCHROME2 only)",
                     tag_name(DCM_PhotometricInterpretation), h.photometric_interpretation));
  }
  {
    OFString frames;
    if (ds.findAndGetOFString(DCM_NumberOfFrames, frames).good() && !frames.empty() && frames != "1") {
      fail(ErrorCode::kUnsupported, path,
           fmt::format("{} is {}: multi-frame images are not read yet", tag_name(DCM_NumberOfFrames), frames.c_str()));
    }
  }
  if (h.bits_allocated != 8 && h.bits_allocated != 16) {
    fail(ErrorCode::kUnsupported, path,
         fmt::format("{} = {} is not supported yet (8 or 16)", tag_name(DCM_BitsAllocated), h.bits_allocated));
  }
  if (h.bits_stored == 0 || h.bits_stored > h.bits_allocated) {
    fail(ErrorCode::kInvalidDicom, path,
         fmt::format("{} = {} must be in 1..{} ({})", tag_name(DCM_BitsStored), h.bits_stored, h.bits_allocated,
                     tag_name(DCM_BitsAllocated)));
  }

  const std::size_t count = std::size_t{h.rows} * h.columns;
  const std::size_t bytes_needed = count * (h.bits_allocated / 8);
  const Uint32 declared = pixel_element->getLength();
  if (declared == DCM_UndefinedLength || declared < bytes_needed) {
    fail(ErrorCode::kInvalidDicom, path,
         fmt::format("{} holds {} bytes but {} x {} x {} bits needs {}", tag_name(DCM_PixelData), declared, h.rows,
                     h.columns, h.bits_allocated, bytes_needed));
  }
  // DCMTK trusts the declared length; the element is still on disk (lazy), so compare with the file.
  if (declared > file_size) {
    fail(ErrorCode::kInvalidDicom, path,
         fmt::format("{} declares {} bytes, more than the file holds: truncated", tag_name(DCM_PixelData), declared));
  }

  h.rescale_slope = 1.0;
  h.rescale_intercept = 0.0;
  if (ds.tagExistsWithValue(DCM_RescaleSlope) || ds.tagExistsWithValue(DCM_RescaleIntercept)) {
    Float64 slope = 1.0, intercept = 0.0;
    if (ds.tagExistsWithValue(DCM_RescaleSlope) && ds.findAndGetFloat64(DCM_RescaleSlope, slope).bad()) {
      fail(ErrorCode::kInvalidDicom, path, "malformed " + tag_name(DCM_RescaleSlope));
    }
    if (ds.tagExistsWithValue(DCM_RescaleIntercept) && ds.findAndGetFloat64(DCM_RescaleIntercept, intercept).bad()) {
      fail(ErrorCode::kInvalidDicom, path, "malformed " + tag_name(DCM_RescaleIntercept));
    }
    if (!std::isfinite(slope) || slope == 0.0 || !std::isfinite(intercept)) {
      fail(ErrorCode::kInvalidDicom, path,
           fmt::format("{} = {} and {} = {}: slope must be finite and non-zero", tag_name(DCM_RescaleSlope), slope,
                       tag_name(DCM_RescaleIntercept), intercept));
    }
    h.rescale_slope = slope;
    h.rescale_intercept = intercept;
  }

  {
    Float64 c = 0.0, w = 0.0;
    if (ds.findAndGetFloat64(DCM_WindowCenter, c).good() && ds.findAndGetFloat64(DCM_WindowWidth, w).good() &&
        std::isfinite(c) && std::isfinite(w) && w > 0.0) {
      h.has_window = true;
      h.window_center = c;
      h.window_width = w;
    }
  }

  // Stored values -> integers (mask to BitsStored, sign-extend), then the modality LUT.
  const unsigned bits = h.bits_stored;
  const std::uint32_t mask = bits >= 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  const std::int32_t sign_bit = static_cast<std::int32_t>(1u << (bits - 1));
  auto stored_value = [&](std::uint32_t raw) -> std::int32_t {
    const std::int32_t v = static_cast<std::int32_t>(raw & mask);
    return (h.pixel_signed && (v & sign_bit)) ? v - (sign_bit << 1) : v;
  };

  PixelType out_type;
  if (options.apply_modality_lut) {
    out_type = PixelType::kFloat32;
  } else if (h.bits_allocated == 8) {
    out_type = h.pixel_signed ? PixelType::kInt8 : PixelType::kUInt8;
  } else {
    out_type = h.pixel_signed ? PixelType::kInt16 : PixelType::kUInt16;
  }
  Image image(out_type, h.columns, h.rows, 1);

  auto convert = [&](const auto* raw) {
    if (options.apply_modality_lut) {
      float* dst = static_cast<float*>(image.mutable_data());
      const double slope = h.rescale_slope, intercept = h.rescale_intercept;
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(stored_value(raw[i]) * slope + intercept);
    } else if (h.bits_allocated == 8) {
      auto* dst = static_cast<std::uint8_t*>(image.mutable_data());
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<std::uint8_t>(stored_value(raw[i]));
    } else {
      auto* dst = static_cast<std::uint16_t*>(image.mutable_data());
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<std::uint16_t>(stored_value(raw[i]));
    }
  };
  if (h.bits_allocated == 8) {
    Uint8* raw = nullptr;
    if (pixel_element->getUint8Array(raw).bad() || raw == nullptr) {
      fail(ErrorCode::kInvalidDicom, path, "cannot read " + tag_name(DCM_PixelData));
    }
    convert(raw);
  } else {
    Uint16* raw = nullptr;
    if (pixel_element->getUint16Array(raw).bad() || raw == nullptr) {
      fail(ErrorCode::kInvalidDicom, path, "cannot read " + tag_name(DCM_PixelData));
    }
    convert(raw);
  }

  std::array<double, 2> pixel_spacing{};  // DICOM order: row spacing (y), column spacing (x)
  if (optional_doubles(ds, DCM_PixelSpacing, pixel_spacing, path)) {
    if (!(pixel_spacing[0] > 0.0) || !(pixel_spacing[1] > 0.0)) {
      fail(ErrorCode::kInvalidDicom, path, tag_name(DCM_PixelSpacing) + " must be > 0");
    }
    image.set_spacing({pixel_spacing[1], pixel_spacing[0]});
  }
  std::array<double, 3> position{};
  if (optional_doubles(ds, DCM_ImagePositionPatient, position, path)) image.set_origin(position);
  std::array<double, 6> orientation{};
  if (optional_doubles(ds, DCM_ImageOrientationPatient, orientation, path)) {
    const double* r = orientation.data();
    const double* c = orientation.data() + 3;
    image.set_direction({r[0], r[1], r[2], c[0], c[1], c[2], r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                         r[0] * c[1] - r[1] * c[0]});
  }
  out.image = std::move(image);
  // No path in the log: paths often carry patient names, and log stores are rarely cleared for PHI.
  detail::log(LogLevel::kDebug, "read a DICOM image ({}x{}, {} bits, {})", h.columns, h.rows, h.bits_stored,
              h.transfer_syntax_uid);
  return out;
}

Image read_image(const std::string& path, const ReadOptions& options) { return read_instance(path, options).image; }

}  // namespace dicom
}  // namespace medinfer
