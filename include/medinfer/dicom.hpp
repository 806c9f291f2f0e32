// DICOM input: read a Part-10 file into an Image in modality units (for CT: Hounsfield units).
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/image.hpp>

#include <cstdint>
#include <string>

namespace medinfer::dicom {

/// Limits checked before any pixel buffer is allocated.
struct ReadOptions {
  /// Apply the Modality LUT (RescaleSlope/Intercept): pixels come back as float32 in modality units.
  /// When false, the stored values come back in their own type (uint8/int8/uint16/int16).
  bool apply_modality_lut = true;
  std::uint64_t max_file_bytes = 1ull << 30;  ///< larger files fail with kResourceLimit
  std::uint32_t max_rows = 16384;             ///< Rows above this fail with kResourceLimit
  std::uint32_t max_columns = 16384;          ///< Columns above this fail with kResourceLimit
};

/// The header values a host needs alongside the pixels. No patient name, ID, birth date or accession
/// number is kept here; the UIDs are identifiers, handle them as such.
struct ImageHeader {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string study_instance_uid;   ///< identifies a patient's study: keep it out of logs
  std::string series_instance_uid;
  std::string transfer_syntax_uid;
  std::string modality;
  std::string body_part_examined;
  std::string photometric_interpretation;
  std::uint16_t rows = 0, columns = 0;
  std::uint16_t bits_allocated = 0, bits_stored = 0;
  bool pixel_signed = false;
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  /// The first WindowCenter/WindowWidth pair, when the file has one with width > 0.
  bool has_window = false;
  double window_center = 0.0, window_width = 0.0;
};

/// An image together with its header.
struct Instance {
  Image image;
  ImageHeader header;
};

/// Reads one uncompressed (Implicit/Explicit VR Little Endian, Explicit VR Big Endian), single-frame,
/// grayscale DICOM Part-10 file. Geometry comes from PixelSpacing, ImagePositionPatient and
/// ImageOrientationPatient when present.
///
/// Throws Error with kNotFound (no such file), kIo (unreadable), kInvalidDicom (not a Part-10 file,
/// no Pixel Data, pixel data shorter than Rows x Columns, inconsistent attributes: the message names
/// the tag), kUnsupported (compressed transfer syntax, colour, multi-frame: names the UID or tag),
/// kResourceLimit (file or dimensions above `options`). Thread-safe.
MEDINFER_API Instance read_instance(const std::string& path, const ReadOptions& options = {});

/// read_instance(path, options).image
MEDINFER_API Image read_image(const std::string& path, const ReadOptions& options = {});

}  // namespace medinfer::dicom
