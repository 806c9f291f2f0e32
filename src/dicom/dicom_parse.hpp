// Internal: the byte-level view of a DICOM stream, built before DCMTK sees any of it.
//
// DCMTK allocates whatever length an element declares (a 1.2 KB file can make it ask for 4 GB), so
// every declared length is checked here against the bytes really present, recursively through
// sequences and encapsulated Pixel Data, before DCMTK parses the header. The walk also records where
// the Pixel Data element and its fragments are, so pixels are decoded straight from the input bytes
// and DCMTK only ever parses the (small) header.
#pragma once

#include "core/block_cache.hpp"

#include <medinfer/dicom.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace medinfer::dicom::detail {

enum class Codec { kNative, kJpeg, kJpegLs, kJpeg2000, kRle, kDeflateFrame };

/// What a transfer syntax means to the reader.
struct SyntaxInfo {
  const char* uid;
  const char* name;
  bool explicit_vr;
  bool big_endian;
  bool deflated;  ///< the whole dataset is deflated (1.2.840.10008.1.2.1.99)
  Codec codec;
  bool lossy;
};

/// The supported syntax for `uid`, or nullptr.
const SyntaxInfo* find_syntax(const std::string& uid);
/// A readable name for any transfer syntax UID we know of (including unsupported ones such as
/// MPEG/HEVC video), or "unknown transfer syntax".
std::string syntax_name(const std::string& uid);

struct Fragment {
  std::size_t offset = 0;  ///< into the dataset bytes
  std::size_t length = 0;
};

/// The top-level pixel element (7FE0,0010 Pixel Data, 0008 Float, 0009 Double Float).
struct PixelElement {
  bool present = false;
  std::uint16_t element = 0x0010;
  std::string vr;                   ///< "OB", "OW", "OF", "OD", or "" (implicit VR)
  std::size_t start = 0, end = 0;   ///< the whole element, header included
  std::size_t value_offset = 0;     ///< native data
  std::size_t value_length = 0;
  bool encapsulated = false;
  std::vector<std::uint32_t> offset_table;  ///< Basic Offset Table (may be empty)
  std::vector<Fragment> fragments;          ///< the fragments after the offset table item
};

/// The layout of a Part-10 file or a bare dataset.
struct Layout {
  bool has_preamble = false;
  bool has_meta = false;
  std::string transfer_syntax_uid;
  std::string media_storage_sop_class_uid;
  const std::uint8_t* dataset = nullptr;  ///< the dataset bytes (inflated when the syntax deflates)
  std::size_t dataset_size = 0;
  PixelElement pixel;
  /// False when `data` was a prefix of the stream and the walk stopped at native Pixel Data that
  /// runs past it (header-only reads): pixel bytes are not available.
  bool complete = true;
  /// What the walk tolerated (odd lengths, wrong group lengths, opaque private data).
  std::vector<HeaderWarning> warnings;
};

/// Adds a warning unless `warnings` holds 32 already or one of the same kind and tag.
void add_warning(std::vector<HeaderWarning>& warnings, HeaderWarningKind kind, std::uint16_t group,
                 std::uint16_t element, std::string message);
/// "(GGGG,EEEE)"
std::string tag_text(std::uint16_t group, std::uint16_t element);

/// Whether `data` starts as a DICOM file can: 'DICM' at byte 128 or at 0, or a dataset whose first
/// element has group 0002 or 0008 (little or big endian). The one "is it DICOM at all" test: walk()
/// refuses what fails it, and find_files skips such files.
bool plausible_start(const std::uint8_t* data, std::size_t size) noexcept;

/// Thrown (header-only walks) when the prefix is not enough: read the whole stream and walk again.
struct NeedFullRead {};

/// Walks `data` (a Part-10 file or, with `fallback_syntax`, a bare dataset). Deflated datasets are
/// inflated into `inflated` (at most `max_inflated` bytes). Throws Error: kInvalidDicom (naming the
/// offset and tag) for a declared length beyond the data, broken sequences or a missing 'DICM';
/// kUnsupported for an unknown transfer syntax; kResourceLimit for an inflated dataset above the limit.
///
/// With `full_size` > `size`, `data` is the first `size` bytes of a `full_size`-byte stream: the walk
/// accepts native Pixel Data whose declared length fits the full stream and stops there
/// (complete = false), and throws NeedFullRead for anything it cannot decide from the prefix.
Layout walk(const std::uint8_t* data, std::size_t size, const std::string& source, const std::string& fallback_syntax,
            std::uint64_t max_inflated, medinfer::detail::Block& inflated, std::size_t full_size = 0);

}  // namespace medinfer::dicom::detail
