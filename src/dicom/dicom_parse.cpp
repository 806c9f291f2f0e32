// A bounds-checked walk over DICOM bytes (PS3.5 section 7): lengths, sequences, items, fragments.
#include "dicom/dicom_parse.hpp"

#include <medinfer/error.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctag.h>

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace medinfer::dicom::detail {
namespace {

constexpr SyntaxInfo kSyntaxes[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", false, false, false, Codec::kNative, false},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", true, false, false, Codec::kNative, false},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", true, false, true, Codec::kNative, false},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", true, true, false, Codec::kNative, false},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", true, false, false, Codec::kJpeg, true},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", true, false, false, Codec::kJpeg, true},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", true, false, false, Codec::kJpeg, false},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 SV1)", true, false,
     false, Codec::kJpeg, false},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", true, false, false, Codec::kJpegLs, false},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", true, false, false, Codec::kJpegLs, true},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", true, false, false, Codec::kJpeg2000, false},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", true, false, false, Codec::kJpeg2000, true},
    {"1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", true, false, false, Codec::kJpeg2000,
     false},
    {"1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)", true, false, false,
     Codec::kJpeg2000, false},
    {"1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", true, false, false, Codec::kJpeg2000, true},
    {"1.2.840.10008.1.2.5", "RLE Lossless", true, false, false, Codec::kRle, false},
    {"1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression", true, false, false, Codec::kDeflateFrame, false},
};

struct NamedUid {
  const char* uid;
  const char* name;
};
constexpr NamedUid kUnsupportedNames[] = {
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)"},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component"},
    {"1.2.840.10008.1.2.4.94", "JPIP Referenced"},
    {"1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate"},
    {"1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level (video)"},
    {"1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile / Main Level (video)"},
    {"1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level (video)"},
    {"1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile / High Level (video)"},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1 (video)"},
    {"1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1 (video)"},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1 (video)"},
    {"1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile (video)"},
    {"1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"},
    {"1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"},
    {"1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2 (video)"},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1 (video)"},
    {"1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1 (video)"},
    {"1.2.840.10008.1.2.4.110", "JPEG XL Lossless"},
    {"1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"},
    {"1.2.840.10008.1.2.4.112", "JPEG XL"},
    {"1.2.840.10008.1.2.6.1", "RFC 2557 MIME encapsulation"},
    {"1.2.840.10008.1.2.6.2", "XML Encoding"},
    {"1.2.840.10008.1.2.7.1", "SMPTE ST 2110-20 Uncompressed Progressive Active Video"},
    {"1.2.840.10008.1.2.7.2", "SMPTE ST 2110-20 Uncompressed Interlaced Active Video"},
    {"1.2.840.10008.1.2.7.3", "SMPTE ST 2110-30 PCM Digital Audio"},
};

constexpr std::uint32_t kUndefined = 0xFFFFFFFFu;
constexpr int kMaxDepth = 48;

// The VRs with a 2-byte length in explicit VR (PS3.5 7.1.2). Every other VR, including ones this
// reader does not know, has a 4-byte length: DCMTK reads unknown VRs the same way, so the walk and
// DCMTK agree on where each element ends.
bool long_length_vr(const char* vr) {
  static constexpr const char* kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                           "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
  for (const char* v : kShort) {
    if (vr[0] == v[0] && vr[1] == v[1]) return false;
  }
  return true;
}

bool is_vr_char(std::uint8_t c) { return c >= 'A' && c <= 'Z'; }

struct ElementHeader {
  std::uint16_t group = 0, element = 0;
  char vr[3] = {0, 0, 0};
  std::uint32_t length = 0;
  std::size_t value = 0;  // offset of the value
};

class Walker {
 public:
  Walker(const std::uint8_t* data, std::size_t size, bool explicit_vr, bool big_endian, const std::string& source,
         PixelElement& pixel, std::vector<HeaderWarning>& warnings, std::size_t base_offset, std::size_t missing)
      : d_(data), n_(size), explicit_(explicit_vr), be_(big_endian), src_(source), pixel_(pixel), warnings_(warnings),
        base_(base_offset), missing_(missing) {}

  /// Returns false when it stopped at Pixel Data running past a prefix.
  bool top() {
    try {
      dataset(0, n_, explicit_, /*delimited=*/false, 0);
    } catch (const Stop&) {
      return false;
    }
    return true;
  }

 private:
  std::uint16_t u16(std::size_t p) const {
    return be_ ? static_cast<std::uint16_t>(d_[p] << 8 | d_[p + 1]) : static_cast<std::uint16_t>(d_[p] | d_[p + 1] << 8);
  }
  std::uint32_t u32(std::size_t p) const {
    return be_ ? (std::uint32_t{d_[p]} << 24 | std::uint32_t{d_[p + 1]} << 16 | std::uint32_t{d_[p + 2]} << 8 | d_[p + 3])
               : (std::uint32_t{d_[p]} | std::uint32_t{d_[p + 1]} << 8 | std::uint32_t{d_[p + 2]} << 16 |
                  std::uint32_t{d_[p + 3]} << 24);
  }

  struct Stop {};

  [[noreturn]] void bad(std::size_t pos, const ElementHeader* h, const std::string& what) const {
    if (missing_ != 0) throw NeedFullRead{};  // a prefix cannot tell truncation from "not read yet"
    if (h != nullptr) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: element ({:04X},{:04X}) at offset {}: {}", src_, h->group, h->element, base_ + pos, what));
    }
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: at offset {}: {}", src_, base_ + pos, what));
  }

  ElementHeader header(std::size_t pos, std::size_t end, bool explicit_here) const {
    ElementHeader h;
    if (end - pos < 8) bad(pos, nullptr, fmt::format("truncated: {} bytes left where an element header needs 8", end - pos));
    h.group = u16(pos);
    h.element = u16(pos + 2);
    if (h.group == 0xFFFE || !explicit_here) {
      h.length = u32(pos + 4);
      h.value = pos + 8;
      return h;
    }
    if (!is_vr_char(d_[pos + 4]) || !is_vr_char(d_[pos + 5])) {
      bad(pos, &h, fmt::format("invalid value representation bytes 0x{:02X} 0x{:02X}", d_[pos + 4], d_[pos + 5]));
    }
    h.vr[0] = static_cast<char>(d_[pos + 4]);
    h.vr[1] = static_cast<char>(d_[pos + 5]);
    if (long_length_vr(h.vr)) {
      if (end - pos < 12) bad(pos, &h, "truncated element header");
      h.length = u32(pos + 8);
      h.value = pos + 12;
    } else {
      h.length = u16(pos + 6);
      h.value = pos + 8;
    }
    return h;
  }

  void check_length(const ElementHeader& h, std::size_t pos, std::size_t end) const {
    if (h.length > end - h.value) {
      bad(pos, &h,
          fmt::format("declares {} bytes but only {} remain{}: truncated or corrupt", h.length, end - h.value,
                      end == n_ ? "" : " in its enclosing item"));
    }
  }

  bool looks_like_items(std::size_t value, std::size_t end) const {
    return end - value >= 8 && u16(value) == 0xFFFE && (u16(value + 2) == 0xE000 || u16(value + 2) == 0xE0DD);
  }

  // A dataset in [pos, end). Delimited datasets (items of undefined length) end at (FFFE,E00D);
  // returns the offset after the delimiter (or `end`).
  std::size_t dataset(std::size_t pos, std::size_t end, bool explicit_here, bool delimited, int depth) {
    if (depth > kMaxDepth) bad(pos, nullptr, fmt::format("sequences nested deeper than {}", kMaxDepth));
    GroupLength group_length;
    while (pos < end) {
      // Trailing zero padding after the last element of the top-level dataset is tolerated.
      if (depth == 0 && end - pos < 8 && std::all_of(d_ + pos, d_ + end, [](std::uint8_t b) { return b == 0; })) {
        return end;
      }
      const ElementHeader h = header(pos, end, explicit_here);
      if (group_length.open && h.group != group_length.group) close_group(group_length, pos);
      if (h.group == 0xFFFE) {
        if (h.element == 0xE00D && delimited) return h.value;
        bad(pos, &h, "unexpected item or delimitation tag in a dataset");
      }
      const bool pixel_tag = depth == 0 && h.group == 0x7FE0 &&
                             (h.element == 0x0010 || h.element == 0x0008 || h.element == 0x0009);
      const std::string vr(h.vr);
      if (h.length == kUndefined) {
        if (pixel_tag && h.element == 0x0010) {
          if (missing_ != 0) throw NeedFullRead{};  // fragments are needed: read it all
          pos = encapsulated(pos, h, end);
          continue;
        }
        if (explicit_here && vr != "SQ" && vr != "UN") {
          bad(pos, &h, fmt::format("undefined length is only allowed for SQ, UN and Pixel Data, not {}", vr));
        }
        // UN of undefined length is an implicit VR little endian sequence (PS3.5 6.2.2).
        pos = sequence(h.value, end, explicit_here && vr != "UN", /*delimited=*/true, depth + 1, h);
        continue;
      }
      if (pixel_tag && missing_ != 0 && depth == 0 && h.length > end - h.value) {
        // Native Pixel Data past the prefix: its declared length must fit the whole stream.
        if (h.length > end - h.value + missing_) {
          const std::size_t available = end - h.value + missing_;
          missing_ = 0;  // a definite answer: report it rather than asking for the whole file
          bad(pos, &h, fmt::format("declares {} bytes but only {} remain: truncated or corrupt", h.length, available));
        }
        pixel_.present = true;
        pixel_.element = h.element;
        pixel_.vr = vr;
        pixel_.start = pos;
        pixel_.end = h.value + h.length;
        pixel_.value_offset = h.value;
        pixel_.value_length = h.length;
        throw Stop{};
      }
      check_length(h, pos, end);
      const std::size_t value_end = h.value + h.length;
      if (h.length % 2 == 1 && !pixel_tag) {
        add_warning(warnings_, HeaderWarningKind::kOddLength, h.group, h.element,
                    fmt::format("element {} has the odd length {}", tag_text(h.group, h.element), h.length));
      }
      if (h.element == 0x0000 && h.length == 4 && h.group != 0x0002) {
        group_length = {h.group, value_end, u32(h.value), true};
      }
      const bool dictionary_sq = (!explicit_here || vr == "UN") && DcmTag(h.group, h.element).getEVR() == EVR_SQ;
      if (vr == "SQ" || dictionary_sq) {
        sequence(h.value, value_end, explicit_here && vr != "UN", /*delimited=*/false, depth + 1, h);
      } else if ((!explicit_here || vr == "UN") && looks_like_items(h.value, value_end)) {
        // Bytes that look like items in an element no dictionary calls a sequence: DCMTK, GDCM and
        // pydicom keep them as bytes; walk them as a sequence only to learn whether they are one.
        const std::size_t kept = warnings_.size();
        try {
          sequence(h.value, value_end, false, /*delimited=*/false, depth + 1, h);
        } catch (const Error& e) {
          warnings_.resize(kept);
          add_warning(warnings_, HeaderWarningKind::kOpaquePrivateData, h.group, h.element,
                      fmt::format("element {} ({}) looks like a sequence but is not one ({}); kept as bytes",
                                  tag_text(h.group, h.element), explicit_here ? vr : "implicit VR", e.what()));
        }
      }
      if (pixel_tag) {
        pixel_.present = true;
        pixel_.element = h.element;
        pixel_.vr = vr;
        pixel_.start = pos;
        pixel_.end = value_end;
        pixel_.value_offset = h.value;
        pixel_.value_length = h.length;
      }
      pos = value_end;
    }
    close_group(group_length, pos);
    if (delimited) bad(pos, nullptr, "truncated: an item of undefined length has no Item Delimitation Item");
    return pos;
  }

  std::size_t sequence(std::size_t pos, std::size_t end, bool explicit_here, bool delimited, int depth,
                       const ElementHeader& owner) {
    while (pos < end) {
      const ElementHeader item = header(pos, end, false);
      if (item.group != 0xFFFE) {
        bad(pos, &owner, fmt::format("sequence holds ({:04X},{:04X}) where an Item tag belongs", item.group, item.element));
      }
      if (item.element == 0xE0DD) {
        if (delimited) return item.value;
        bad(pos, &owner, "Sequence Delimitation Item in a sequence of defined length");
      }
      if (item.element != 0xE000) bad(pos, &owner, fmt::format("unexpected (FFFE,{:04X}) in a sequence", item.element));
      if (item.length == kUndefined) {
        pos = dataset(item.value, end, explicit_here, /*delimited=*/true, depth);
      } else {
        check_length(item, pos, end);
        dataset(item.value, item.value + item.length, explicit_here, /*delimited=*/false, depth);
        pos = item.value + item.length;
      }
    }
    if (delimited) bad(pos, &owner, "truncated: the sequence has no Sequence Delimitation Item");
    return pos;
  }

  std::size_t encapsulated(std::size_t start, const ElementHeader& h, std::size_t end) {
    pixel_.present = true;
    pixel_.encapsulated = true;
    pixel_.element = h.element;
    pixel_.vr = h.vr;
    pixel_.start = start;
    std::size_t pos = h.value;
    bool first = true;
    while (true) {
      if (pos >= end) bad(start, &h, "truncated: encapsulated Pixel Data has no Sequence Delimitation Item");
      const ElementHeader item = header(pos, end, false);
      if (item.group == 0xFFFE && item.element == 0xE0DD) {
        pixel_.end = item.value;
        if (first) bad(start, &h, "encapsulated Pixel Data has no Basic Offset Table item");
        return item.value;
      }
      if (item.group != 0xFFFE || item.element != 0xE000 || item.length == kUndefined) {
        bad(pos, &h, fmt::format("encapsulated Pixel Data holds ({:04X},{:04X}) with length {} where a fragment item belongs",
                                 item.group, item.element, item.length));
      }
      check_length(item, pos, end);
      if (first) {
        if (item.length % 4 != 0) bad(pos, &h, fmt::format("Basic Offset Table length {} is not a multiple of 4", item.length));
        for (std::size_t p = item.value; p < item.value + item.length; p += 4) pixel_.offset_table.push_back(u32(p));
        first = false;
      } else {
        pixel_.fragments.push_back({item.value, item.length});
      }
      pos = item.value + item.length;
    }
  }

  // A Group Length element's claim, checked when its group ends.
  struct GroupLength {
    std::uint16_t group = 0;
    std::size_t start = 0;  // the first byte after (gggg,0000)
    std::uint32_t claimed = 0;
    bool open = false;
  };
  void close_group(GroupLength& g, std::size_t end) {
    if (g.open && end - g.start != g.claimed) {
      add_warning(warnings_, HeaderWarningKind::kGroupLength, g.group, 0x0000,
                  fmt::format("Group Length of group {:04X} says {} bytes; the group holds {}", g.group, g.claimed,
                              end - g.start));
    }
    g.open = false;
  }

  const std::uint8_t* d_;
  std::size_t n_;
  bool explicit_, be_;
  const std::string& src_;
  PixelElement& pixel_;
  std::vector<HeaderWarning>& warnings_;
  std::size_t base_;
  std::size_t missing_;  // bytes of the stream beyond this buffer (header-only walks)
};

std::uint16_t le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

std::string trim_uid(const std::uint8_t* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

// Parses File Meta Information (group 0002, always explicit VR little endian) starting at `pos`.
// Returns the offset after it.
std::size_t parse_meta(const std::uint8_t* d, std::size_t n, std::size_t pos, const std::string& source, Layout& out) {
  while (pos + 8 <= n && le16(d + pos) == 0x0002) {
    const std::uint16_t element = le16(d + pos + 2);
    std::size_t value = 0;
    std::uint32_t length = 0;
    if (is_vr_char(d[pos + 4]) && is_vr_char(d[pos + 5])) {
      const char vr[3] = {static_cast<char>(d[pos + 4]), static_cast<char>(d[pos + 5]), 0};
      if (long_length_vr(vr)) {
        if (pos + 12 > n) break;
        length = le32(d + pos + 8);
        value = pos + 12;
      } else {
        length = le16(d + pos + 6);
        value = pos + 8;
      }
    } else {  // some old writers encoded the meta group in implicit VR
      length = le32(d + pos + 4);
      value = pos + 8;
    }
    if (length > n - value) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: File Meta element (0002,{:04X}) at offset {} declares {} bytes but only {} remain",
                              source, element, pos, length, n - value));
    }
    if (element == 0x0010) out.transfer_syntax_uid = trim_uid(d + value, length);
    if (element == 0x0002) out.media_storage_sop_class_uid = trim_uid(d + value, length);
    out.has_meta = true;
    pos = value + length;
  }
  return pos;
}

// For a dataset without File Meta: explicit or implicit VR little endian, or explicit big endian.
std::string guess_syntax(const std::uint8_t* d, std::size_t n) {
  if (n < 8) return "1.2.840.10008.1.2";
  const bool little_group_small = le16(d) <= 0x00FF;
  if (!little_group_small && d[0] == 0x00 && d[1] != 0x00) {
    return "1.2.840.10008.1.2.2";  // group 0x0008 written big endian
  }
  return (is_vr_char(d[4]) && is_vr_char(d[5])) ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2";
}

// One raw deflate stream (PS3.5 A.5), inflated step by step into room the caller provides.
class RawInflate {
 public:
  RawInflate(const std::uint8_t* d, std::size_t n, const std::string& source) : source_(source) {
    if (inflateInit2(&z_, -MAX_WBITS) != Z_OK) throw Error(ErrorCode::kInternal, "zlib: inflateInit2 failed");
    z_.next_in = const_cast<Bytef*>(d);
    z_.avail_in = static_cast<uInt>(std::min<std::size_t>(n, UINT32_MAX));
  }
  ~RawInflate() { inflateEnd(&z_); }
  RawInflate(const RawInflate&) = delete;
  RawInflate& operator=(const RawInflate&) = delete;

  /// Inflates into [out, out + room); returns the bytes written.
  std::size_t step(std::uint8_t* out, std::uint64_t room) {
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(std::min<std::uint64_t>(room, UINT32_MAX));
    const uInt before = z_.avail_out;
    rc_ = inflate(&z_, Z_NO_FLUSH);
    return before - z_.avail_out;
  }
  /// After a step: true at the stream's end; kInvalidDicom when it is corrupt or ends early.
  bool ended() const {
    if (rc_ == Z_STREAM_END) return true;
    if (rc_ != Z_OK && rc_ != Z_BUF_ERROR) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: the deflated dataset is corrupt (zlib: {})", source_,
                                                        z_.msg != nullptr ? z_.msg : "error"));
    }
    if (z_.avail_in == 0 && (rc_ == Z_BUF_ERROR || z_.avail_out != 0)) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: the deflated dataset is truncated", source_));
    }
    return false;
  }

 private:
  z_stream z_{};
  int rc_ = Z_OK;
  const std::string& source_;
};

// Inflates the stream into `out` (max_bytes + 1 bytes), or only counts its bytes through a 64 KB
// window when `out` is null. Stops with kResourceLimit as soon as the output passes `max_bytes`.
std::size_t inflate_pass(const std::uint8_t* d, std::size_t n, std::uint64_t max_bytes, const std::string& source,
                         std::uint8_t* out) {
  RawInflate z(d, n, source);
  std::uint8_t window[64 * 1024];
  std::size_t produced = 0;
  do {
    produced += out != nullptr ? z.step(out + produced, max_bytes + 1 - produced)
                               : z.step(window, std::min<std::uint64_t>(max_bytes - produced + 1, sizeof window));
    if (produced > max_bytes) {
      throw Error(ErrorCode::kResourceLimit,
                  fmt::format("{}: the deflated dataset inflates to more than {} bytes (ReadOptions::max_file_bytes)",
                              source, max_bytes));
    }
  } while (!z.ended());
  return produced;
}

// Up to kDirectInflate bytes are inflated in one pass into a growing block (a slice's dataset: one
// pass, a copy or two of a few MB at most). A dataset that grows past it is counted first through a
// 64 KB window under the limit (a bomb is refused having cost nothing), then inflated into a block of
// exactly its size (no growth by copying, so the peak is the dataset itself).
constexpr std::size_t kDirectInflate = 16u << 20;

void inflate_into(const std::uint8_t* d, std::size_t n, std::uint64_t max_bytes, const std::string& source,
                  medinfer::detail::Block& out) {
  const std::size_t direct = static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, kDirectInflate));
  {
    RawInflate z(d, n, source);
    out = medinfer::detail::Block(std::min<std::size_t>(std::max<std::size_t>(n * 4, 64 * 1024), direct) + 1);
    std::size_t produced = 0;
    while (true) {
      produced += z.step(out.data() + produced, out.size() - produced);
      if (z.ended()) {
        if (produced <= direct) {
          out.truncate(produced);
          return;
        }
        break;
      }
      if (produced < out.size()) continue;
      if (out.size() > direct) break;  // past the one-pass size: count first, then inflate exactly
      out.grow(std::min(out.size() * 2, direct + 1));
    }
  }
  const std::size_t size = inflate_pass(d, n, max_bytes, source, nullptr);
  out = medinfer::detail::Block(size + 1);
  const std::size_t again = inflate_pass(d, n, size, source, out.data());
  out.truncate(again);
}

}  // namespace

}  // namespace medinfer::dicom::detail

namespace medinfer::dicom {
const char* to_string(HeaderWarningKind kind) noexcept {
  switch (kind) {
    case HeaderWarningKind::kInvalidValue: return "invalid_value";
    case HeaderWarningKind::kOpaquePrivateData: return "opaque_private_data";
    case HeaderWarningKind::kOversizedValue: return "oversized_value";
    case HeaderWarningKind::kOddLength: return "odd_length";
    case HeaderWarningKind::kGroupLength: return "group_length";
    case HeaderWarningKind::kCharacterSet: return "character_set";
  }
  return "unknown";
}
}  // namespace medinfer::dicom

namespace medinfer::dicom::detail {

std::string tag_text(std::uint16_t group, std::uint16_t element) {
  return fmt::format("({:04X},{:04X})", group, element);
}

void add_warning(std::vector<HeaderWarning>& warnings, HeaderWarningKind kind, std::uint16_t group,
                 std::uint16_t element, std::string message) {
  constexpr std::size_t kMaxWarnings = 32;
  const std::string tag = tag_text(group, element);
  if (warnings.size() >= kMaxWarnings) return;
  for (const HeaderWarning& w : warnings) {
    if (w.kind == kind && w.tag == tag) return;
  }
  warnings.push_back({kind, tag, std::move(message)});
}

const SyntaxInfo* find_syntax(const std::string& uid) {
  for (const SyntaxInfo& s : kSyntaxes) {
    if (uid == s.uid) return &s;
  }
  return nullptr;
}

std::string syntax_name(const std::string& uid) {
  if (const SyntaxInfo* s = find_syntax(uid)) return s->name;
  for (const NamedUid& u : kUnsupportedNames) {
    if (uid == u.uid) return u.name;
  }
  if (uid.rfind("1.2.840.10008.1.2.4.", 0) == 0) return "a retired JPEG process";
  return "unknown transfer syntax";
}

bool plausible_start(const std::uint8_t* data, std::size_t size) noexcept {
  if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) return true;
  if (size >= 4 && std::memcmp(data, "DICM", 4) == 0) return true;
  // No preamble, no meta: a bare meta group, or legacy ACR-NEMA style files starting with group 0008.
  return size >= 8 && (le16(data) == 0x0002 || le16(data) == 0x0008 || (data[0] == 0 && data[1] == 0x08));
}

Layout walk(const std::uint8_t* data, std::size_t size, const std::string& source, const std::string& fallback_syntax,
            std::uint64_t max_inflated, medinfer::detail::Block& inflated, std::size_t full_size) {
  const std::size_t missing = full_size > size ? full_size - size : 0;
  Layout out;
  std::size_t pos = 0;
  if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) {
    out.has_preamble = true;
    pos = parse_meta(data, size, 132, source, out);
  } else if (size >= 4 && std::memcmp(data, "DICM", 4) == 0) {  // preamble missing, prefix kept
    pos = parse_meta(data, size, 4, source, out);
  } else if (size >= 8 && le16(data) == 0x0002) {
    pos = parse_meta(data, size, 0, source, out);
  } else if (fallback_syntax.empty()) {
    // No preamble, no meta: legacy ACR-NEMA style files still start with a low group number.
    if (!plausible_start(data, size)) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: not DICOM (no 'DICM' prefix at byte 128 and no dataset at the start)", source));
    }
  }
  if (out.transfer_syntax_uid.empty()) {
    out.transfer_syntax_uid = !fallback_syntax.empty() ? fallback_syntax : guess_syntax(data + pos, size - pos);
  }
  const SyntaxInfo* syntax = find_syntax(out.transfer_syntax_uid);
  if (syntax == nullptr) {
    throw Error(ErrorCode::kUnsupported, fmt::format("{}: transfer syntax {} ({}) is not supported", source,
                                                     out.transfer_syntax_uid, syntax_name(out.transfer_syntax_uid)));
  }
  std::size_t base = pos;
  if (syntax->deflated && missing != 0) throw NeedFullRead{};
  if (syntax->deflated) {
    inflate_into(data + pos, size - pos, max_inflated, source, inflated);
    out.dataset = inflated.data();
    out.dataset_size = inflated.size();
    base = 0;
  } else {
    out.dataset = data + pos;
    out.dataset_size = size - pos;
  }
  Walker walker(out.dataset, out.dataset_size, syntax->explicit_vr, syntax->big_endian, source, out.pixel,
                out.warnings, base, missing);
  out.complete = walker.top();
  if (out.complete && missing != 0) throw NeedFullRead{};  // ended inside the prefix: odd, read it all
  return out;
}

}  // namespace medinfer::dicom::detail
