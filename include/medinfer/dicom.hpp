// DICOM input: read a Part-10 file into an Image in modality units (for CT: Hounsfield units).
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/image.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace medinfer::dicom {

/// How a file is read. The limits are checked before any pixel buffer is allocated.
struct ReadOptions {
  /// Apply the Modality LUT (RescaleSlope/Intercept, or the Modality LUT Sequence): grayscale pixels
  /// come back as float32 in modality units (for CT: Hounsfield units). When false, the stored
  /// values come back in their own type (uint8/int8/uint16/int16/uint32/int32/float32/float64).
  bool apply_modality_lut = true;
  /// MONOCHROME1 means "higher value = darker". When true, read_instance inverts such images
  /// (stored value v becomes min + max - v over the Bits Stored range, before the modality LUT) so
  /// every grayscale image comes back "higher = brighter". Off by default: the header always says
  /// which photometric interpretation the file had, and nothing changes behind the host's back.
  bool invert_monochrome1 = false;
  /// Colour images: true converts YBR_FULL / YBR_FULL_422 to RGB and looks PALETTE COLOR indices up
  /// in the palette (RGB), so read_instance returns 3-channel RGB. False returns the decoded
  /// samples as they are (palette indices, YCbCr).
  bool convert_color = true;
  /// read_instance returns this frame (0-based) of a multi-frame object; only that frame is decoded.
  std::uint32_t frame = 0;
  /// For bare datasets without File Meta Information (what a network receiver hands over): the
  /// transfer syntax they are encoded in. Empty: take it from File Meta, or guess for legacy files.
  std::string transfer_syntax_uid;
  std::uint64_t max_file_bytes = 1ull << 30;   ///< larger inputs fail with kResourceLimit
  std::uint32_t max_rows = 16384;              ///< Rows above this fail with kResourceLimit
  std::uint32_t max_columns = 16384;           ///< Columns above this fail with kResourceLimit
  std::uint32_t max_frames = 10000;            ///< NumberOfFrames above this fails with kResourceLimit
  std::uint64_t max_pixel_bytes = 1ull << 31;  ///< decoded size of the frames read, above: kResourceLimit
};

/// A header problem that does not change the pixels: the file is still read, and says so.
enum class HeaderWarningKind {
  kInvalidValue,       ///< "invalid_value": a value not usable as its attribute requires (e.g. PixelSpacing 0\0);
                       ///< the header field keeps its "absent" state (has_pixel_spacing = false, ...)
  kOpaquePrivateData,  ///< "opaque_private_data": a UN or private element whose bytes look like, but are not, a
                       ///< valid sequence: kept as bytes, as DCMTK, GDCM and pydicom keep it
  kOversizedValue,     ///< "oversized_value": a text value above 64 KiB, left out of ImageHeader (not copied)
  kOddLength,          ///< "odd_length": an element of odd length (PS3.5 7.1.1 wants even lengths)
  kGroupLength,        ///< "group_length": a Group Length (gggg,0000) that does not match its group's bytes
  kCharacterSet,       ///< "character_set": an unknown Specific Character Set, or text it cannot decode
                       ///< (undecodable bytes are replaced by U+FFFD)
};
/// The kind's name, as above ("invalid_value", ...): the `code` of inspect --json and audit records.
MEDINFER_API const char* to_string(HeaderWarningKind kind) noexcept;

/// One header warning: its kind, the tag it concerns as "(0028,0030)" (empty when none), and a message
/// naming the attribute and what was wrong.
struct HeaderWarning {
  HeaderWarningKind kind = HeaderWarningKind::kInvalidValue;
  std::string tag;
  std::string message;
};

/// The header values a host needs alongside the pixels. No patient name, ID, birth date or accession
/// number is kept here (see PatientIdentifiers); the UIDs are identifiers, handle them as such.
struct ImageHeader {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string study_instance_uid;   ///< identifies a patient's study: keep it out of logs
  std::string series_instance_uid;
  std::string frame_of_reference_uid;
  std::string transfer_syntax_uid;
  std::string transfer_syntax_name;  ///< "JPEG-LS Lossless", ...
  std::string modality;
  std::string body_part_examined;
  std::string manufacturer;
  std::string manufacturer_model_name;
  std::string study_date, series_date, acquisition_date, content_date;  ///< YYYYMMDD as in the file
  std::string series_description;
  std::vector<std::string> image_type;  ///< ImageType values, e.g. {"ORIGINAL", "PRIMARY", "AXIAL"}
  /// The object has Pixel Data (or Float / Double Float Pixel Data). False for a non-image object (a
  /// Structured Report, a presentation state, ...): read_header describes it, read_instance refuses it.
  bool has_pixel_data = false;
  std::string photometric_interpretation;
  std::uint16_t rows = 0, columns = 0;
  std::uint32_t frames = 1;             ///< NumberOfFrames (1 when absent)
  std::uint16_t samples_per_pixel = 1;
  std::uint16_t planar_configuration = 0;
  std::uint16_t bits_allocated = 0, bits_stored = 0, high_bit = 0;
  bool pixel_signed = false;            ///< PixelRepresentation == 1
  bool float_pixels = false;            ///< Float / Double Float Pixel Data
  std::int32_t instance_number = 0;     ///< 0 when absent
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  bool has_modality_lut_sequence = false;  ///< a Modality LUT Sequence replaces slope/intercept
  /// The first WindowCenter/WindowWidth pair, when the file has one with width > 0, and its
  /// VOILUTFunction ("LINEAR" when absent, "LINEAR_EXACT", "SIGMOID").
  bool has_window = false;
  double window_center = 0.0, window_width = 0.0;
  std::string voi_lut_function = "LINEAR";
  /// The first item of the VOI LUT Sequence, when present: output = voi_lut[clamp(v - first_mapped)]
  /// for a modality value v, on a scale of voi_lut_bits bits.
  bool has_voi_lut_sequence = false;
  std::vector<std::uint16_t> voi_lut;
  std::int32_t voi_lut_first_mapped = 0;
  std::uint16_t voi_lut_bits = 16;
  bool has_pixel_padding = false;       ///< PixelPaddingValue present
  double pixel_padding_value = 0.0;     ///< in stored values
  bool has_pixel_spacing = false;
  std::array<double, 2> pixel_spacing{1.0, 1.0};  ///< DICOM order: row spacing, column spacing (mm)
  double slice_thickness = 0.0;         ///< 0 when absent
  bool has_position = false;            ///< ImagePositionPatient (or the first frame's, for enhanced objects)
  std::array<double, 3> image_position{0.0, 0.0, 0.0};
  bool has_orientation = false;         ///< ImageOrientationPatient
  std::array<double, 6> image_orientation{1, 0, 0, 0, 1, 0};
  /// Problems that did not stop the read (at most 32; see HeaderWarningKind). Text fields are UTF-8,
  /// decoded from the file's Specific Character Set.
  std::vector<HeaderWarning> warnings;
};

/// Patient-identifying attributes, kept apart from ImageHeader so they never travel by accident.
struct PatientIdentifiers {
  std::string patient_name, patient_id, patient_birth_date, patient_sex, other_patient_ids;
  std::string accession_number, institution_name, referring_physician_name, study_id;
};

/// The decoded stored values of a DICOM image: shaped (frames, rows, columns, samples), C order,
/// little endian; uint8/int8 for 8 bits allocated, uint16/int16 for 16, uint32/int32 for 32 (signed
/// when PixelRepresentation is 1), float32/float64 for Float/Double Float Pixel Data, 1-bit data
/// unpacked to 0/1 as uint8. Each value is masked to BitsStored and sign-extended when signed. No
/// rescale, no LUT (PALETTE COLOR gives indices); planar configuration 1 is made interleaved; native
/// YBR_FULL_422 is upsampled by repeating chroma; colour stays in the codec's output space, named by
/// `photometric` (JPEG YCbCr stays YBR_FULL; JPEG 2000's ICT/RCT is undone: RGB).
struct StoredPixels {
  PixelType type = PixelType::kUInt8;
  std::uint32_t frames = 0, rows = 0, columns = 0, samples = 0;
  std::string photometric;
  std::vector<std::uint8_t> data;
  ImageHeader header;  ///< the file's header, read in the same pass
  std::size_t frame_bytes() const { return std::size_t{rows} * columns * samples * bytes_per_sample(type); }
};

/// An image together with its header.
struct Instance {
  Image image;
  ImageHeader header;
};

/// Reads one frame (ReadOptions::frame) of a DICOM Part-10 file as an Image: grayscale in modality
/// units (float32) or stored values, colour as RGB (see ReadOptions::convert_color). Every transfer
/// syntax in docs/dicom.md is read: uncompressed (implicit/explicit little, explicit big endian,
/// deflated), JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000 and High-Throughput JPEG 2000, RLE,
/// Deflated Image Frame Compression. Geometry comes from PixelSpacing, ImagePositionPatient and
/// ImageOrientationPatient (or the per-frame functional groups of enhanced objects).
///
/// Throws Error with kNotFound (no such file), kIo (unreadable), kInvalidDicom (not DICOM, truncated
/// or corrupt data, inconsistent attributes: the message names the tag or byte offset), kUnsupported
/// (a transfer syntax this build cannot decode, such as video: names the UID and its name),
/// kResourceLimit (file, dimensions, frames or decoded bytes above `options`), kInvalidArgument (a
/// frame index beyond NumberOfFrames). Thread-safe.
MEDINFER_API Instance read_instance(const std::string& path, const ReadOptions& options = {});

/// The same for DICOM bytes in memory: a Part-10 file, or a bare dataset (no File Meta) encoded in
/// `options.transfer_syntax_uid`. `name` only labels error messages. The bytes are not retained.
MEDINFER_API Instance read_instance_from_memory(const void* data, std::size_t size, const std::string& name,
                                                const ReadOptions& options = {});

/// read_instance(path, options).image
MEDINFER_API Image read_image(const std::string& path, const ReadOptions& options = {});

/// The header alone: pixel data is located and bounds-checked but not decoded.
MEDINFER_API ImageHeader read_header(const std::string& path, const ReadOptions& options = {});

/// The patient-identifying attributes of a file (for a host that must show them; never logged).
MEDINFER_API PatientIdentifiers read_patient_identifiers(const std::string& path, const ReadOptions& options = {});

/// The decoded stored values of every frame (see StoredPixels). Same errors as read_instance.
MEDINFER_API StoredPixels read_stored_pixels(const std::string& path, const ReadOptions& options = {});
MEDINFER_API StoredPixels read_stored_pixels_from_memory(const void* data, std::size_t size, const std::string& name,
                                                         const ReadOptions& options = {});

/// Summary of stored values: minimum, maximum and mean over every sample of every frame, and the
/// SHA-256 (hex) of `data` exactly as laid out in StoredPixels (the corpus reference hash).
struct StoredStatistics {
  double min = 0.0, max = 0.0, mean = 0.0;
  std::string sha256;
};
MEDINFER_API StoredStatistics statistics(const StoredPixels& pixels);

/// The name of a transfer syntax UID ("JPEG-LS Lossless", "MPEG2 Main Profile / Main Level (video)",
/// or "unknown transfer syntax"), and whether this build decodes it.
MEDINFER_API std::string transfer_syntax_name(const std::string& uid);
MEDINFER_API bool transfer_syntax_supported(const std::string& uid);

}  // namespace medinfer::dicom
