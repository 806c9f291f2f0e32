// Internal: one DICOM object, walked and bounds-checked, its header parsed by DCMTK, its frames
// decoded on demand (one frame without decoding the others).
#pragma once

#include "core/block_cache.hpp"

#include <medinfer/dicom.hpp>

#include "dicom/dicom_parse.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace medinfer::dicom::detail {

/// The pixel module values that drive decoding.
struct PixelFormat {
  std::uint32_t rows = 0, columns = 0, frames = 1;
  std::uint16_t samples = 1, bits_allocated = 0, bits_stored = 0, pixel_representation = 0, planar = 0;
  std::string photometric;
  bool float_data = false;  // 7FE0,0008 or 7FE0,0009
  std::string syntax_uid;
  PixelType stored_type() const;
  std::size_t cell_bytes() const { return bytes_per_sample(stored_type()); }
  std::size_t frame_samples() const { return std::size_t{rows} * columns * samples; }
  std::size_t frame_out_bytes() const { return frame_samples() * cell_bytes(); }
};

/// A lookup table (Modality LUT, VOI LUT, palette): LUT Descriptor and LUT Data.
struct Lut {
  std::uint32_t entries = 0;
  std::int32_t first_mapped = 0;
  std::uint16_t bits = 16;
  std::vector<std::uint16_t> data;
  double lookup(double stored) const;
};

class DicomFile {
 public:
  ~DicomFile();
  DicomFile(const DicomFile&) = delete;
  DicomFile& operator=(const DicomFile&) = delete;
  /// Reads a file (the bytes are kept) or copies nothing and borrows `data` for the call's duration
  /// (`owned` empty). Throws Error as read_instance documents.
  static std::unique_ptr<DicomFile> open_path(const std::string& path, const ReadOptions& options);
  /// Like open_path, but reads only the first 256 KB when that holds the whole header (native Pixel
  /// Data is then bounds-checked against the file size, not read). decode_frame is unavailable on
  /// such an object; anything the prefix cannot settle reads it all.
  static std::unique_ptr<DicomFile> open_header(const std::string& path, const ReadOptions& options);
  /// Whether the object is a DICOMDIR (Media Storage Directory), by its File Meta.
  bool is_dicomdir() const { return layout_.media_storage_sop_class_uid == "1.2.840.10008.1.3.10"; }
  bool has_pixels() const { return layout_.pixel.present; }
  static std::unique_ptr<DicomFile> open_memory(const void* data, std::size_t size, const std::string& name,
                                                const ReadOptions& options);

  const std::string& source() const { return source_; }
  const ImageHeader& header() const { return header_; }
  const PixelFormat& format() const { return format_; }
  PatientIdentifiers identifiers();

  /// Fails with kInvalidDicom unless the object has pixel data this reader can decode, and with
  /// kResourceLimit when `frames` frames exceed the configured limits.
  void require_pixels(std::uint32_t frames) const;

  /// The photometric interpretation of decoded stored values (see StoredPixels).
  std::string stored_photometric() const;
  /// Decodes frame `index` as stored values into `out` (format().frame_out_bytes() bytes).
  /// Const and thread-safe: frames may be decoded in parallel.
  void decode_frame(std::uint32_t index, std::uint8_t* out) const;

  /// ImagePositionPatient of frame `index` (per-frame functional groups for enhanced objects).
  std::optional<std::array<double, 3>> frame_position(std::uint32_t index);
  /// Rescale slope/intercept of frame `index` (per-frame functional groups override the header).
  std::pair<double, double> frame_rescale(std::uint32_t index);
  const std::optional<Lut>& modality_lut() const { return modality_lut_; }
  /// Red, green, blue palette LUTs for PALETTE COLOR.
  std::array<Lut, 3> palette();
  Lut read_segmented_lut(const DcmTagKey& descriptor, const DcmTagKey& data);

 private:
  DicomFile() = default;
  void parse(const std::uint8_t* data, std::size_t size, const ReadOptions& options, std::size_t full_size = 0);
  void read_bytes(const std::string& path, std::size_t limit, std::uint64_t file_size);
  void parse_header(const ReadOptions& options);
  void map_frames();
  void warn(HeaderWarningKind kind, const DcmTagKey& key, std::string message);
  /// A string value, trimmed, as UTF-8 (decoded from the Specific Character Set); empty when absent,
  /// and (with a warning) when above 64 KiB.
  std::string text(DcmItem& item, const DcmTagKey& key);
  /// N numbers; false when absent, and (with a warning) when malformed.
  template <std::size_t N>
  bool numbers(DcmItem& item, const DcmTagKey& key, std::array<double, N>& out);
  // The bytes of frame `index`: a pointer into the input, or `scratch` when fragments are joined.
  std::pair<const std::uint8_t*, std::size_t> frame_bytes(std::uint32_t index, std::vector<std::uint8_t>& scratch) const;

  std::string source_;
  ReadOptions options_;
  medinfer::detail::Block owned_;  // the input's bytes (from the block cache)
  std::size_t owned_size_ = 0;
  medinfer::detail::Block inflated_;  // the inflated dataset (deflated syntax)
  Layout layout_;
  const SyntaxInfo* syntax_ = nullptr;
  DcmDataset dataset_;
  ImageHeader header_;
  PixelFormat format_;
  std::optional<Lut> modality_lut_;
  std::string charset_name_;                // Specific Character Set as written
  std::vector<std::string> charset_terms_;  // its terms; empty: the default repertoire
  // Encapsulated data: [first, last) fragment indices of each frame.
  std::vector<std::pair<std::size_t, std::size_t>> frame_fragments_;
};

// Codecs (codecs.cpp). Each writes one frame's cells (format.frame_samples() values of
// format.cell_bytes() each, samples interleaved) into `out`; `photometric` receives the colour space
// the codec produced when it differs from the file's.
/// Returns true when it also applied mask_stored (the fused little-endian 16-bit path).
bool decode_native(const std::uint8_t* data, std::size_t size, std::size_t bit_offset, const PixelFormat& format,
                   bool big_endian, const std::string& vr, std::uint8_t* out);
void decode_rle(const std::uint8_t* data, std::size_t size, const PixelFormat& format, const std::string& source,
                std::uint8_t* out);
/// JPEG 2000 and HTJ2K (OpenJPEG: docs/dicom.md says why not OpenJPH).
void decode_jpeg2000(const std::uint8_t* data, std::size_t size, const PixelFormat& format, const std::string& source,
                     std::uint8_t* out);
void decode_jpegls(const std::uint8_t* data, std::size_t size, const PixelFormat& format, const std::string& source,
                   std::uint8_t* out);
void decode_jpeg(const std::uint8_t* data, std::size_t size, const PixelFormat& format, const std::string& source,
                 std::uint8_t* out, std::string* photometric);
/// Deflated Image Frame Compression: inflates one frame into `out` (native little-endian bytes).
void inflate_frame(const std::uint8_t* data, std::size_t size, std::size_t expected, const std::string& source,
                   std::vector<std::uint8_t>& out);
/// Stored cells of one grayscale frame to float modality values (LUT, or slope/intercept), with the
/// MONOCHROME1 inversion when `invert` (read_image.cpp).
void stored_to_modality(const PixelFormat& format, const std::uint8_t* cells, float* dst, double slope,
                        double intercept, const Lut* lut, bool invert);
/// Masks cells to BitsStored and sign-extends them when signed.
void mask_stored(const PixelFormat& format, std::uint8_t* cells, std::size_t count);

}  // namespace medinfer::dicom::detail
