// Pixel codecs: native (PS3.5 8.1-8.2), RLE (PS3.5 G, our own: DCMTK's cannot do 1-bit data), JPEG
// (DCMTK's IJG 8/12/16-bit decoders), JPEG-LS (CharLS), JPEG 2000 and HTJ2K (OpenJPEG), Deflated
// Image Frame Compression (zlib). Every decoder checks its output against the header before writing.
#include "dicom/dicom_file.hpp"

#include <medinfer/error.hpp>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>

#include <charls/charls.h>
#include <openjpeg.h>
#include <zlib.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace medinfer::dicom::detail {
namespace {

[[noreturn]] void corrupt(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kInvalidDicom, source + ": " + what);
}

template <typename T>
void put(std::uint8_t* out, std::size_t index, T value) {
  std::memcpy(out + index * sizeof(T), &value, sizeof(T));
}

// Writes `value` into cell `index` of width `cell_bytes` (little endian host).
inline void put_cell(std::uint8_t* out, std::size_t index, std::size_t cell_bytes, std::uint64_t value) {
  switch (cell_bytes) {
    case 1: out[index] = static_cast<std::uint8_t>(value); break;
    case 2: put(out, index, static_cast<std::uint16_t>(value)); break;
    case 4: put(out, index, static_cast<std::uint32_t>(value)); break;
    default: put(out, index, value); break;
  }
}

// Trailing bytes after a codestream's end marker that DICOM allows: the zero byte that pads a
// fragment to even length (some writers add a few more zeros); for JPEG codestreams also 0xFF fill
// bytes (PS3.5 A.4: writers pad with either).
std::size_t strip_padding(const std::uint8_t* data, std::size_t size, bool fill_ff = false) {
  while (size > 0 && (data[size - 1] == 0x00 || (fill_ff && data[size - 1] == 0xFF))) --size;
  return size;
}

/// The frame header (SOFn) of a JPEG codestream.
struct JpegFrameHeader {
  std::uint8_t marker = 0;
  std::uint32_t precision = 0, rows = 0, columns = 0, components = 0;
};

JpegFrameHeader read_jpeg_frame_header(const std::uint8_t* data, std::size_t size, const std::string& source,
                                       const char* what) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) corrupt(source, fmt::format("{} codestream has no SOI marker", what));
  std::size_t p = 2;
  while (p + 4 <= size) {
    if (data[p] != 0xFF) corrupt(source, fmt::format("{} codestream: no marker at byte {}", what, p));
    while (p + 1 < size && data[p + 1] == 0xFF) ++p;  // fill bytes
    if (p + 4 > size) break;
    const std::uint8_t m = data[p + 1];
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // markers without a length
      p += 2;
      continue;
    }
    if (m == 0xD9 || m == 0xDA) break;  // EOI, or the scan before any frame header
    const std::size_t length = std::size_t{data[p + 2]} << 8 | data[p + 3];
    if (length < 2 || p + 2 + length > size) {
      corrupt(source, fmt::format("{} marker 0xFF{:02X} at byte {} declares {} bytes past the codestream's end", what,
                                  m, p, length));
    }
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (length < 8) corrupt(source, fmt::format("{} frame header (SOF) of {} bytes is too short", what, length));
      JpegFrameHeader h;
      h.marker = m;
      h.precision = data[p + 4];
      h.rows = std::uint32_t{data[p + 5]} << 8 | data[p + 6];
      h.columns = std::uint32_t{data[p + 7]} << 8 | data[p + 8];
      h.components = data[p + 9];
      return h;
    }
    p += 2 + length;
  }
  corrupt(source, fmt::format("{} codestream has no frame header (SOF marker)", what));
}

void check_frame_shape(const std::string& source, const char* what, std::uint32_t rows, std::uint32_t columns,
                       std::uint32_t samples, std::uint32_t precision, const PixelFormat& f) {
  if (rows != f.rows || columns != f.columns || samples != f.samples) {
    corrupt(source, fmt::format("{} codestream is {} rows x {} columns x {} samples but the header says {} x {} x {} "
                                "(Rows, Columns, SamplesPerPixel)",
                                what, rows, columns, samples, f.rows, f.columns, f.samples));
  }
  // Precision between BitsStored and BitsAllocated is read as the other toolkits do (values are then
  // masked to BitsStored); above BitsAllocated the values cannot be held.
  if (precision == 0 || precision > f.bits_allocated) {
    corrupt(source, fmt::format("{} codestream has {}-bit samples but BitsAllocated is {}", what, precision,
                                f.bits_allocated));
  }
}

void check_ends_with(const std::uint8_t* data, std::size_t size, std::uint8_t b0, std::uint8_t b1,
                     const std::string& source, const char* what, const char* marker) {
  const std::size_t n = strip_padding(data, size, /*fill_ff=*/true);
  if (n < 2 || data[n - 2] != b0 || data[n - 1] != b1) {
    corrupt(source, fmt::format("{} codestream of {} bytes does not end with its {} marker: truncated, or followed by "
                                "data that is not padding",
                                what, size, marker));
  }
}

}  // namespace

namespace {
// Copies `count` little-endian 16-bit cells, keeping the low `bits` (sign-extended when signed).
void copy_masked16(const std::uint8_t* in, std::uint8_t* out, std::size_t count, unsigned bits, bool is_signed) {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(16 - bits));
  const __m128i mask = _mm_set1_epi16(static_cast<short>((1u << bits) - 1u));
  for (; i + 8 <= count; i += 8) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i));
    v = is_signed ? _mm_sra_epi16(_mm_sll_epi16(v, shift), shift) : _mm_and_si128(v, mask);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), v);
  }
#endif
  for (; i < count; ++i) {
    std::uint16_t v;
    std::memcpy(&v, in + 2 * i, 2);
    const unsigned sh = 16 - bits;
    v = is_signed ? static_cast<std::uint16_t>(static_cast<std::int16_t>(static_cast<std::uint16_t>(v << sh)) >> sh)
                  : static_cast<std::uint16_t>(v & ((1u << bits) - 1u));
    std::memcpy(out + 2 * i, &v, 2);
  }
}
}  // namespace

bool decode_native(const std::uint8_t* data, std::size_t size, std::size_t bit_offset, const PixelFormat& f,
                   bool big_endian, const std::string& vr, std::uint8_t* out) {
  const std::size_t pixels = std::size_t{f.rows} * f.columns;
  const std::size_t n = pixels * f.samples;
  if (f.bits_allocated == 1) {
    if (bit_offset + n > std::uint64_t{size} * 8) throw Error(ErrorCode::kInvalidDicom, "1-bit pixel data is truncated");
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t bit = bit_offset + i;
      out[i] = static_cast<std::uint8_t>((data[bit >> 3] >> (bit & 7)) & 1u);
    }
    return false;
  }
  const std::size_t b = f.bits_allocated / 8;
  const std::size_t start = bit_offset / 8;
  const bool ybr422 = f.photometric == "YBR_FULL_422" && f.samples == 3 && b == 1;
  const std::size_t frame_bytes = ybr422 ? pixels * 2 : n * b;
  if (start + frame_bytes > size) throw Error(ErrorCode::kInvalidDicom, "pixel data is shorter than its frames");
  const std::uint8_t* in = data + start;

  if (ybr422) {  // Y0 Y1 Cb Cr -> (Y0 Cb Cr) (Y1 Cb Cr): chroma repeated, no colour conversion
    for (std::size_t p = 0; p + 1 < pixels; p += 2) {
      const std::uint8_t* q = in + p * 2;
      std::uint8_t* o = out + p * 3;
      o[0] = q[0]; o[1] = q[2]; o[2] = q[3];
      o[3] = q[1]; o[4] = q[2]; o[5] = q[3];
    }
    return false;
  }
  const bool planar = f.planar == 1 && f.samples > 1;
  const bool swap_ow8 = big_endian && b == 1 && vr == "OW";
  // Fast paths (the common cases): one pass, no per-sample dispatch.
  if (!planar && !swap_ow8) {
    if (!big_endian) {
      if (b == 2 && f.bits_stored < 16) {
        copy_masked16(in, out, n, f.bits_stored, f.pixel_representation == 1);  // one pass, mask included
        return true;
      }
      std::memcpy(out, in, n * b);
      return false;
    }
    if (b == 2) {
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, in + 2 * i, 2);
        v = static_cast<std::uint16_t>((v >> 8) | (v << 8));
        std::memcpy(out + 2 * i, &v, 2);
      }
      return false;
    }
  }
  auto source_index = [&](std::size_t p, std::size_t c) { return planar ? c * pixels + p : p * f.samples + c; };
  for (std::size_t p = 0; p < pixels; ++p) {
    for (std::size_t c = 0; c < f.samples; ++c) {
      const std::size_t k = source_index(p, c);
      const std::size_t o = p * f.samples + c;
      switch (b) {
        case 1:
          out[o] = swap_ow8 ? data[(start + k) ^ 1u] : in[k];
          break;
        case 2: {
          const std::uint8_t* q = in + k * 2;
          put(out, o, static_cast<std::uint16_t>(big_endian ? (q[0] << 8 | q[1]) : (q[0] | q[1] << 8)));
          break;
        }
        case 4: {
          const std::uint8_t* q = in + k * 4;
          std::uint32_t v;
          if (!big_endian) {
            v = std::uint32_t{q[0]} | std::uint32_t{q[1]} << 8 | std::uint32_t{q[2]} << 16 | std::uint32_t{q[3]} << 24;
          } else if (vr == "OW") {  // swapped as 16-bit words, as DCMTK and GDCM do (see docs/dicom.md)
            v = std::uint32_t{q[1]} | std::uint32_t{q[0]} << 8 | std::uint32_t{q[3]} << 16 | std::uint32_t{q[2]} << 24;
          } else {
            v = std::uint32_t{q[3]} | std::uint32_t{q[2]} << 8 | std::uint32_t{q[1]} << 16 | std::uint32_t{q[0]} << 24;
          }
          put(out, o, v);
          break;
        }
        case 8: {
          const std::uint8_t* q = in + k * 8;
          std::uint64_t v = 0;
          for (int i = 0; i < 8; ++i) v |= std::uint64_t{q[big_endian ? 7 - i : i]} << (8 * i);
          put(out, o, v);
          break;
        }
        default:
          throw Error(ErrorCode::kUnsupported, fmt::format("Bits Allocated {} is not supported", f.bits_allocated));
      }
    }
  }
  return false;
}

namespace {
// Keeps the low `bits` of each value and, when signed, extends bit `bits - 1`: a shift up and an
// arithmetic shift down, which the compiler vectorises.
template <typename U, typename S>
void mask_cells(U* __restrict p, std::size_t count, unsigned bits, bool is_signed) {
  const int shift = static_cast<int>(sizeof(U) * 8 - bits);
  if (is_signed) {
    S* q = reinterpret_cast<S*>(p);
    for (std::size_t i = 0; i < count; ++i) q[i] = static_cast<S>(static_cast<S>(q[i] * (S{1} << shift)) >> shift);
  } else {
    const U mask = static_cast<U>(static_cast<U>(~U{0}) >> shift);
    for (std::size_t i = 0; i < count; ++i) p[i] &= mask;
  }
}
}  // namespace

void mask_stored(const PixelFormat& f, std::uint8_t* cells, std::size_t count) {
  if (f.float_data || f.bits_allocated == 1) return;
  const std::size_t cb = f.cell_bytes();
  const unsigned bits = f.bits_stored;
  if (bits >= cb * 8) return;
  const bool s = f.pixel_representation == 1;
  if (cb == 1) {
    mask_cells<std::uint8_t, std::int8_t>(cells, count, bits, s);
  } else if (cb == 2) {
#if defined(__SSE2__)
    // The common CT/MR case (12 of 16 bits): 16-bit lanes directly (the portable loop widens to 32).
    const __m128i count_reg = _mm_cvtsi32_si128(static_cast<int>(16 - bits));
    const __m128i mask = _mm_set1_epi16(static_cast<short>((1u << bits) - 1u));
    std::size_t i = 0;
    for (; i + 8 <= count; i += 8) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(cells + 2 * i));
      v = s ? _mm_sra_epi16(_mm_sll_epi16(v, count_reg), count_reg) : _mm_and_si128(v, mask);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(cells + 2 * i), v);
    }
    mask_cells<std::uint16_t, std::int16_t>(reinterpret_cast<std::uint16_t*>(cells) + i, count - i, bits, s);
    return;
#endif
    mask_cells<std::uint16_t, std::int16_t>(reinterpret_cast<std::uint16_t*>(cells), count, bits, s);
  } else {
    mask_cells<std::uint32_t, std::int32_t>(reinterpret_cast<std::uint32_t*>(cells), count, bits, s);
  }
}

// ---- RLE Lossless (PS3.5 Annex G) ----
void decode_rle(const std::uint8_t* data, std::size_t size, const PixelFormat& f, const std::string& source,
                std::uint8_t* out) {
  if (size < 64) corrupt(source, fmt::format("RLE frame of {} bytes is shorter than its 64-byte header", size));
  auto le32 = [&](std::size_t p) {
    return std::uint32_t{data[p]} | std::uint32_t{data[p + 1]} << 8 | std::uint32_t{data[p + 2]} << 16 |
           std::uint32_t{data[p + 3]} << 24;
  };
  const std::uint32_t segments = le32(0);
  const std::size_t bytes_per_sample = f.bits_allocated == 1 ? 1 : f.bits_allocated / 8;
  const std::size_t expected_segments = bytes_per_sample * f.samples;
  if (segments != expected_segments || segments > 15) {
    corrupt(source, fmt::format("RLE header declares {} segments; {} samples of {} bits need {}", segments, f.samples,
                                f.bits_allocated, expected_segments));
  }
  const std::size_t pixels = std::size_t{f.rows} * f.columns;
  const std::size_t seg_len = f.bits_allocated == 1 ? (pixels + 7) / 8 : pixels;
  std::vector<std::uint8_t> seg(seg_len);
  const std::size_t cb = f.cell_bytes();
  if (f.bits_allocated != 1) std::memset(out, 0, pixels * f.samples * cb);  // bits above the segments are 0
  for (std::uint32_t s = 0; s < segments; ++s) {
    const std::size_t begin = le32(4 + 4 * s);
    const std::size_t end = s + 1 < segments ? le32(8 + 4 * s) : size;
    if (begin < 64 || begin > end || end > size) {
      corrupt(source, fmt::format("RLE segment {} has offsets {}..{} outside the {}-byte frame", s, begin, end, size));
    }
    std::size_t o = 0, i = begin;
    while (o < seg_len && i < end) {
      const int n = static_cast<std::int8_t>(data[i++]);
      if (n >= 0) {
        const std::size_t count = static_cast<std::size_t>(n) + 1;
        if (i + count > end) corrupt(source, fmt::format("RLE segment {}: a literal run passes the segment end", s));
        if (count > seg_len - o) {
          corrupt(source, fmt::format("RLE segment {} decodes past the frame's {} bytes (a literal run of {} at byte {})",
                                      s, seg_len, count, o));
        }
        std::memcpy(seg.data() + o, data + i, count);
        o += count;
        i += count;
      } else if (n != -128) {
        if (i >= end) corrupt(source, fmt::format("RLE segment {}: a replicate run has no byte", s));
        const std::size_t count = static_cast<std::size_t>(1 - n);
        if (count > seg_len - o) {
          corrupt(source, fmt::format("RLE segment {} decodes past the frame's {} bytes (a run of {} at byte {})", s,
                                      seg_len, count, o));
        }
        std::memset(seg.data() + o, data[i++], count);
        o += count;
      }
    }
    if (o < seg_len) corrupt(source, fmt::format("RLE segment {} decodes to {} bytes; {} expected", s, o, seg_len));
    // What follows the last run must decode to nothing: no-op bytes (-128) or the padding byte that
    // makes a segment even (PS3.5 G.3.1); anything else would be pixels beyond the frame.
    std::size_t rest = 0;
    for (std::size_t k = i; k < end; ++k) {
      if (data[k] != 0x80) ++rest;
    }
    if (rest > 1) {
      corrupt(source, fmt::format("RLE segment {} holds {} bytes beyond the frame's {} decoded bytes", s, end - i,
                                  seg_len));
    }
    const std::size_t sample = s / bytes_per_sample;
    const std::size_t byte = bytes_per_sample - 1 - s % bytes_per_sample;  // first segment = most significant
    if (f.bits_allocated == 1) {
      for (std::size_t p = 0; p < pixels; ++p) out[p * f.samples + sample] = (seg[p >> 3] >> (p & 7)) & 1u;
      continue;
    }
    for (std::size_t p = 0; p < pixels; ++p) out[(p * f.samples + sample) * cb + byte] = seg[p];
  }
}

// ---- JPEG 2000 main header (ISO/IEC 15444-1 A.5.1, A.6.1) ----
namespace {
// The SIZ and COD values a JPEG 2000 decoder divides and allocates by, checked against the
// standard's ranges before the decoder sees them (OpenJPH 0.9 divided by a zero tile height: found by
// the fuzzer when it decoded HTJ2K; OpenJPEG gets the same guard).
struct J2kMainHeader {
  bool signed_component = false;  // any Ssiz with the sign bit
  bool high_throughput = false;   // a CAP marker (Part 15), or a COD/COC selecting HT code-blocks
  std::size_t first_tile_part = 0;  // where the main header ends (the first SOT, when well formed)
  std::size_t coc_index_bytes = 1;  // Ccoc is 2 bytes with 257 or more components
};

constexpr std::uint8_t kHtCodeBlocks = 0x40;  // code-block style bit: HT (what OpenJPEG decodes as HTJ2K)
J2kMainHeader check_j2k_main_header(const std::uint8_t* d, std::size_t n, const std::string& source, const char* what) {
  J2kMainHeader info;
  auto u16 = [&](std::size_t p) { return static_cast<std::uint32_t>(d[p] << 8 | d[p + 1]); };
  auto u32 = [&](std::size_t p) { return u16(p) << 16 | u16(p + 2); };
  auto bad = [&](const std::string& m) { corrupt(source, fmt::format("{} main header: {}", what, m)); };
  if (n < 4 || u16(0) != 0xFF4F || u16(2) != 0xFF51) bad("no SOC and SIZ markers");
  if (n < 6) bad("truncated SIZ");
  const std::uint32_t lsiz = u16(4);
  if (lsiz < 41 || 4 + lsiz > n) bad(fmt::format("SIZ length {} is invalid", lsiz));
  const std::uint32_t x = u32(8), y = u32(12), xo = u32(16), yo = u32(20), xt = u32(24), yt = u32(28),
                      xto = u32(32), yto = u32(36), c = u16(40);
  if (c == 0 || lsiz != 38 + 3 * c) bad(fmt::format("SIZ declares {} components in {} bytes", c, lsiz));
  info.coc_index_bytes = c < 257 ? 1 : 2;
  if (x <= xo || y <= yo) bad(fmt::format("the image area {} x {} at offset {}, {} is empty", x, y, xo, yo));
  if (xt == 0 || yt == 0 || xto > xo || yto > yo || std::uint64_t{xt} + xto <= xo || std::uint64_t{yt} + yto <= yo) {
    bad(fmt::format("tile size {} x {} at offset {}, {} is invalid", xt, yt, xto, yto));
  }
  const std::uint64_t tiles = ((std::uint64_t{x} - xto + xt - 1) / xt) * ((std::uint64_t{y} - yto + yt - 1) / yt);
  if (tiles > 65535) bad(fmt::format("{} tiles (at most 65535)", tiles));
  for (std::uint32_t k = 0; k < c; ++k) {
    const std::size_t p = 42 + 3 * k;
    if (d[p] & 0x80) info.signed_component = true;
    if ((d[p] & 0x7F) + 1 > 38 || d[p + 1] == 0 || d[p + 2] == 0) {
      bad(fmt::format("component {} has depth {} and subsampling {} x {}", k, (d[p] & 0x7F) + 1, d[p + 1], d[p + 2]));
    }
  }
  // COD in the main header (before the first tile-part): levels and code-block size.
  std::size_t p = 4 + lsiz;
  while (p + 4 <= n && d[p] == 0xFF && d[p + 1] != 0x90) {
    const std::uint32_t marker = u16(p), len = u16(p + 2);
    if (len < 2 || p + 2 + len > n) bad(fmt::format("marker 0x{:04X} runs past the codestream", marker));
    if (marker == 0xFF50) info.high_throughput = true;
    if (marker == 0xFF53 && len >= 9 + info.coc_index_bytes && (d[p + 4 + info.coc_index_bytes + 4] & kHtCodeBlocks)) {
      info.high_throughput = true;
    }
    if (marker == 0xFF52) {
      if (len < 12) bad("COD is too short");
      const std::uint32_t layers = u16(p + 6), levels = d[p + 9], xcb = d[p + 10] + 2u, ycb = d[p + 11] + 2u;
      if (layers == 0 || levels > 32 || xcb > 10 || ycb > 10 || xcb + ycb > 12) {
        bad(fmt::format("COD has {} layers, {} decomposition levels, code-blocks 2^{} x 2^{}", layers, levels, xcb, ycb));
      }
      if (d[p + 8] > 1 || (d[p + 8] == 1 && c < 3)) bad("COD asks for a colour transform on fewer than 3 components");
      if (d[p + 12] & kHtCodeBlocks) info.high_throughput = true;
    }
    p += 2 + len;
  }
  info.first_tile_part = p;
  return info;
}

// Whether a COD or COC marker in a tile-part header selects HT code-blocks (the main header's are in
// J2kMainHeader::high_throughput). A tile-part chain that cannot be followed counts as HT: the caller
// then isolates the decode.
bool tile_parts_use_ht(const std::uint8_t* d, std::size_t n, const J2kMainHeader& main) {
  auto u16 = [&](std::size_t p) { return static_cast<std::uint32_t>(d[p] << 8 | d[p + 1]); };
  auto u32 = [&](std::size_t p) { return u16(p) << 16 | u16(p + 2); };
  // Marker segments from `p` to SOD; nullopt when they cannot be followed.
  auto header_has_ht = [&](std::size_t p, std::size_t end) -> std::optional<bool> {
    while (p + 4 <= end && d[p] == 0xFF) {
      const std::uint32_t marker = u16(p);
      if (marker == 0xFF93) return false;  // SOD
      const std::uint32_t len = u16(p + 2);
      if (len < 2 || p + 2 + len > end) break;
      if (marker == 0xFF52 && len >= 11 && (d[p + 12] & kHtCodeBlocks)) return true;
      if (marker == 0xFF53 && len >= 9 + main.coc_index_bytes &&
          (d[p + 4 + main.coc_index_bytes + 4] & kHtCodeBlocks)) {
        return true;
      }
      p += 2 + len;
    }
    return std::nullopt;
  };
  std::size_t p = main.first_tile_part;
  for (int parts = 0; p + 12 <= n && d[p] == 0xFF && d[p + 1] == 0x90 && parts < 1 << 16; ++parts) {
    const std::uint32_t psot = u32(p + 6);
    const std::size_t end = psot == 0 ? n : p + psot;
    if (end > n || (psot < 14 && psot != 0)) return true;
    if (header_has_ht(p + 12, end).value_or(true)) return true;
    if (psot == 0) return false;
    p = end;
  }
  return !(p + 2 <= n && d[p] == 0xFF && d[p + 1] == 0xD9);  // the chain must end at EOC
}
}  // namespace

// ---- JPEG 2000 / HTJ2K (OpenJPEG 2.5) ----
namespace {
struct MemoryStream {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos;
};
OPJ_SIZE_T opj_read(void* buffer, OPJ_SIZE_T n, void* user) {
  auto* m = static_cast<MemoryStream*>(user);
  if (m->pos >= m->size) return static_cast<OPJ_SIZE_T>(-1);
  const std::size_t take = std::min<std::size_t>(n, m->size - m->pos);
  std::memcpy(buffer, m->data + m->pos, take);
  m->pos += take;
  return take;
}
OPJ_OFF_T opj_skip(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemoryStream*>(user);
  if (n < 0) return -1;
  const std::size_t take = std::min<std::size_t>(static_cast<std::size_t>(n), m->size - m->pos);
  m->pos += take;
  return static_cast<OPJ_OFF_T>(take);
}
OPJ_BOOL opj_seek(OPJ_OFF_T n, void* user) {
  auto* m = static_cast<MemoryStream*>(user);
  if (n < 0 || static_cast<std::size_t>(n) > m->size) return OPJ_FALSE;
  m->pos = static_cast<std::size_t>(n);
  return OPJ_TRUE;
}
void opj_message(const char* msg, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->empty()) {
    *s = msg;
    while (!s->empty() && (s->back() == '\n' || s->back() == ' ')) s->pop_back();
  }
}
void opj_quiet(const char*, void*) {}
}  // namespace

namespace {

// OpenJPEG's decode of one frame into `out`.
void decode_openjpeg(const std::uint8_t* data, std::size_t size, bool jp2, const PixelFormat& f,
                     const std::string& source, std::uint8_t* out) {
  std::string error;
  opj_codec_t* codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
  opj_set_error_handler(codec, opj_message, &error);
  opj_set_warning_handler(codec, opj_quiet, nullptr);
  opj_set_info_handler(codec, opj_quiet, nullptr);
  opj_dparameters_t params;
  opj_set_default_decoder_parameters(&params);
  MemoryStream mem{data, size, 0};
  opj_stream_t* stream = opj_stream_create(size == 0 ? 1 : std::min<std::size_t>(size, 1 << 20), OPJ_TRUE);
  opj_stream_set_user_data(stream, &mem, nullptr);
  opj_stream_set_user_data_length(stream, size);
  opj_stream_set_read_function(stream, opj_read);
  opj_stream_set_skip_function(stream, opj_skip);
  opj_stream_set_seek_function(stream, opj_seek);
  opj_image_t* image = nullptr;
  struct Cleanup {
    opj_codec_t* c;
    opj_stream_t* s;
    opj_image_t** i;
    ~Cleanup() {
      if (*i) opj_image_destroy(*i);
      opj_stream_destroy(s);
      opj_destroy_codec(c);
    }
  } cleanup{codec, stream, &image};
  // Strict: a truncated codestream is an error, not a partly decoded (zero-filled) image.
  const bool ok = opj_setup_decoder(codec, &params) && opj_decoder_set_strict_mode(codec, OPJ_TRUE) &&
                  opj_read_header(stream, codec, &image) &&
                  opj_decode(codec, stream, image) && opj_end_decompress(codec, stream);
  if (!ok || image == nullptr) {
    corrupt(source, "JPEG 2000 codestream cannot be decoded (OpenJPEG: " + (error.empty() ? "error" : error) + ")");
  }
  if (image->numcomps == 0) corrupt(source, "JPEG 2000 codestream has no components");
  for (std::uint32_t c = 0; c < image->numcomps; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (comp.data == nullptr || comp.dx != 1 || comp.dy != 1) {
      corrupt(source, fmt::format("JPEG 2000 component {} is subsampled or empty", c));
    }
    check_frame_shape(source, "JPEG 2000", comp.h, comp.w, image->numcomps, comp.prec, f);
  }
  const std::size_t pixels = std::size_t{f.rows} * f.columns;
  const std::size_t cb = f.cell_bytes();
  for (std::size_t p = 0; p < pixels; ++p) {
    for (std::uint32_t c = 0; c < f.samples; ++c) {
      put_cell(out, p * f.samples + c, cb, static_cast<std::uint64_t>(static_cast<std::int64_t>(image->comps[c].data[p])));
    }
  }
}

// Runs `decode` (which fills `bytes` bytes) in a forked child writing to shared memory, so that a
// decoder that aborts (Debian's OpenJPEG 2.5.0 asserts in its HTJ2K block decoder, mel_init, on
// malformed code-blocks: found by the fuzzer) ends the child, not the host: kInvalidDicom instead.
// An Error the child throws comes back with its code and message.
void run_isolated(std::size_t bytes, std::uint8_t* out, const std::string& source, const char* what,
                  const std::function<void(std::uint8_t*)>& decode) {
  struct Shared {
    int state;  // 0 running, 1 done, 2 error
    int code;
    char message[1024];
  };
  const std::size_t total = sizeof(Shared) + bytes;
  void* map = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) throw Error(ErrorCode::kResourceLimit, source + ": cannot map memory for the " + what + " decoder");
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { munmap(p, n); }
  } unmap{map, total};
  auto* shared = static_cast<Shared*>(map);
  auto* cells = static_cast<std::uint8_t*>(map) + sizeof(Shared);
  const pid_t pid = fork();
  if (pid < 0) throw Error(ErrorCode::kInternal, source + ": fork failed for the " + what + " decoder");
  if (pid == 0) {
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);  // die, do not report
    const int null = open("/dev/null", O_WRONLY);  // an assert's message must not reach the host's stderr
    if (null >= 0) dup2(null, STDERR_FILENO);
    try {
      decode(cells);
      shared->state = 1;
    } catch (const Error& e) {
      shared->code = static_cast<int>(e.code());
      std::snprintf(shared->message, sizeof shared->message, "%s", e.what());
      shared->state = 2;
    } catch (...) {
      shared->state = 0;
    }
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // (If the host ignores SIGCHLD, waitpid fails with ECHILD once the child is gone: the state says.)
  if (shared->state == 1) {
    std::memcpy(out, cells, bytes);
    return;
  }
  if (shared->state == 2) throw Error(static_cast<ErrorCode>(shared->code), shared->message);
  corrupt(source, fmt::format("the {} decoder (OpenJPEG) died on this codestream{}", what,
                              WIFSIGNALED(status) ? fmt::format(" (signal {})", WTERMSIG(status)) : std::string()));
}

}  // namespace

void decode_jpeg2000(const std::uint8_t* data, std::size_t size, const PixelFormat& f, const std::string& source,
                     std::uint8_t* out) {
  const bool jp2 = size >= 12 && data[4] == 'j' && data[5] == 'P' && data[6] == ' ' && data[7] == ' ';
  if (jp2) {
    decode_openjpeg(data, size, true, f, source, out);
    return;
  }
  const J2kMainHeader main = check_j2k_main_header(data, size, source, "JPEG 2000");
  check_ends_with(data, size, 0xFF, 0xD9, source, "JPEG 2000", "EOC");
  if (!main.high_throughput && !tile_parts_use_ht(data, size, main)) {
    decode_openjpeg(data, size, false, f, source, out);
    return;
  }
  if (main.signed_component) {
    // Measured: OpenJPEG 2.5.0 clamps negative HTJ2K samples (OpenJPH decodes them right, but aborts
    // on hostile input): refused rather than returned wrong (docs/dicom.md).
    throw Error(ErrorCode::kUnsupported,
                source + ": signed HTJ2K samples are not decoded by this build (OpenJPEG 2.5.0 clamps them)");
  }
  run_isolated(f.frame_out_bytes(), out, source, "HTJ2K",
               [&](std::uint8_t* cells) { decode_openjpeg(data, size, false, f, source, cells); });
}

// ---- JPEG-LS (CharLS 2.4) ----
void decode_jpegls(const std::uint8_t* data, std::size_t size, const PixelFormat& f, const std::string& source,
                   std::uint8_t* out) {
  charls::frame_info info{};
  charls::interleave_mode mode = charls::interleave_mode::none;
  std::vector<std::uint8_t> buf;
  check_ends_with(data, size, 0xFF, 0xD9, source, "JPEG-LS", "EOI");
  try {
    charls::jpegls_decoder dec(data, size, true);  // reads the frame header (SOF55), decodes nothing yet
    info = dec.frame_info();
    mode = dec.interleave_mode();
    check_frame_shape(source, "JPEG-LS", info.height, info.width, static_cast<std::uint32_t>(info.component_count),
                      static_cast<std::uint32_t>(info.bits_per_sample), f);
    buf.resize(dec.destination_size());
    dec.decode(buf.data(), buf.size());
  } catch (const charls::jpegls_error& e) {
    corrupt(source, std::string("JPEG-LS codestream cannot be decoded (CharLS: ") + e.what() + ")");
  }
  const std::size_t pixels = std::size_t{f.rows} * f.columns;
  const std::size_t in_bytes = info.bits_per_sample <= 8 ? 1 : 2;
  if (buf.size() < pixels * f.samples * in_bytes) corrupt(source, "JPEG-LS decoder returned too few bytes");
  const bool planar = mode == charls::interleave_mode::none && f.samples > 1;
  const std::size_t cb = f.cell_bytes();
  for (std::size_t p = 0; p < pixels; ++p) {
    for (std::size_t c = 0; c < f.samples; ++c) {
      const std::size_t k = planar ? c * pixels + p : p * f.samples + c;
      const std::uint32_t v = in_bytes == 1 ? buf[k] : static_cast<std::uint32_t>(buf[2 * k] | buf[2 * k + 1] << 8);
      put_cell(out, p * f.samples + c, cb, v);
    }
  }
}

// ---- JPEG (DCMTK's IJG decoders, through a one-frame scratch dataset) ----
void decode_jpeg(const std::uint8_t* data, std::size_t size, const PixelFormat& f, const std::string& source,
                 std::uint8_t* out, std::string* photometric) {
  const JpegFrameHeader sof = read_jpeg_frame_header(data, size, source, "JPEG");
  check_frame_shape(source, "JPEG", sof.rows, sof.columns, sof.components, sof.precision, f);
  check_ends_with(data, size, 0xFF, 0xD9, source, "JPEG", "EOI");
  static std::once_flag once;
  // No colour conversion: YCbCr stays YCbCr (stored values); read_instance converts on request.
  std::call_once(once, [] { DJDecoderRegistration::registerCodecs(EDC_never, EUC_never, EPC_colorByPixel); });
  DcmDataset ds;
  ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(f.rows));
  ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(f.columns));
  ds.putAndInsertUint16(DCM_SamplesPerPixel, f.samples);
  ds.putAndInsertUint16(DCM_BitsAllocated, f.bits_allocated);
  ds.putAndInsertUint16(DCM_BitsStored, f.bits_stored);
  ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(f.bits_stored - 1));
  ds.putAndInsertUint16(DCM_PixelRepresentation, f.pixel_representation);
  ds.putAndInsertString(DCM_PhotometricInterpretation, f.photometric.c_str());
  if (f.samples > 1) ds.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  ds.putAndInsertString(DCM_NumberOfFrames, "1");
  auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelData, EVR_OB));
  seq->insert(new DcmPixelItem(DcmTag(DCM_Item, EVR_OB)));  // empty Basic Offset Table
  auto* item = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
  item->putUint8Array(data, static_cast<unsigned long>(size));
  seq->insert(item);
  auto* pixel = new DcmPixelData(DCM_PixelData);
  ds.insert(pixel);
  const DcmXfer xfer(f.syntax_uid.c_str());
  pixel->putOriginalRepresentation(xfer.getXfer(), nullptr, seq);
  Uint32 start = 0;
  OFString color;
  // DCMTK wants an even buffer size: decode odd-sized frames (3 x 3 RGB, ...) through a scratch copy.
  const std::size_t bytes = f.frame_out_bytes();
  std::vector<std::uint8_t> scratch(bytes % 2 == 1 ? bytes + 1 : 0);
  void* target = scratch.empty() ? static_cast<void*>(out) : scratch.data();
  const Uint32 target_size = static_cast<Uint32>(scratch.empty() ? bytes : scratch.size());
  const OFCondition c = pixel->getUncompressedFrame(&ds, 0, start, target, target_size, color);
  if (c.bad()) corrupt(source, std::string("JPEG data cannot be decoded (DCMTK: ") + c.text() + ")");
  if (!scratch.empty()) std::memcpy(out, scratch.data(), bytes);
  if (photometric != nullptr) *photometric = color.c_str();
}

// ---- Deflated Image Frame Compression (1.2.840.10008.1.2.8.1) ----
void inflate_frame(const std::uint8_t* data, std::size_t size, std::size_t expected, const std::string& source,
                   std::vector<std::uint8_t>& out) {
  // Inflates into exactly `expected` + 1 bytes: a stream that produces more is refused there, so a
  // fragment that would inflate to gigabytes costs one frame of memory.
  for (int window_bits : {-MAX_WBITS, MAX_WBITS + 32}) {  // raw deflate, then zlib/gzip wrapped
    z_stream z{};
    if (inflateInit2(&z, window_bits) != Z_OK) throw Error(ErrorCode::kInternal, "zlib: inflateInit2 failed");
    if (out.size() < expected + 1) out.resize(expected + 1);
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(std::min<std::size_t>(size, UINT32_MAX));
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(expected + 1);
    const int rc = inflate(&z, Z_FINISH);
    const std::size_t produced = expected + 1 - z.avail_out;
    const std::size_t left = strip_padding(z.next_in, z.avail_in);
    inflateEnd(&z);
    if (produced > expected) {
      throw Error(ErrorCode::kResourceLimit,
                  fmt::format("{}: a deflated frame inflates to more than the {} bytes its header declares", source,
                              expected));
    }
    if (rc == Z_STREAM_END) {
      if (produced < expected) {
        corrupt(source, fmt::format("a deflated frame inflates to {} bytes; {} expected", produced, expected));
      }
      if (left > 0) corrupt(source, fmt::format("a deflated frame is followed by {} bytes that are not padding", left));
      out.resize(expected);
      return;
    }
    if (rc == Z_BUF_ERROR && produced != 0) break;  // a valid start that ends early: truncated
  }
  corrupt(source, "a deflated frame is corrupt or truncated (zlib)");
}

}  // namespace medinfer::dicom::detail
