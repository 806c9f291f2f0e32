// Every transfer syntax, on files this test generates: DCMTK's own converters (dcmconv, dcmcjpeg,
// dcmcjpls, dcmcrle), OpenJPEG's opj_compress for JPEG 2000, zlib for Deflated Image Frame
// Compression. Lossless syntaxes must give back the source's stored values bit-exact, lossy ones
// PSNR >= 40 dB. Then bad inputs: truncation at every offset, corrupt codestreams, absurd headers.
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace medinfer;
using test::DicomSpec;
using test::error_code_of;

namespace {

constexpr const char* kExplicitLE = "1.2.840.10008.1.2.1";

// Smooth content (lossy codecs at default quality stay far above 40 dB on it) plus a little noise.
DicomSpec smooth_spec(std::uint16_t bits_allocated, std::uint16_t bits_stored, bool is_signed, std::uint16_t samples,
                      std::uint32_t frames) {
  DicomSpec s;
  s.rows = 48;
  s.columns = 64;
  s.bits_allocated = bits_allocated;
  s.bits_stored = bits_stored;
  s.pixel_signed = is_signed;
  s.samples_per_pixel = samples;
  s.photometric = samples == 3 ? "RGB" : "MONOCHROME2";
  s.frames_of_data = frames;
  if (frames > 1) s.number_of_frames = std::to_string(frames);
  s.write_rescale = samples == 1;
  std::mt19937 rng(7);
  const double top = std::ldexp(1.0, bits_stored) - 1;
  for (std::uint32_t f = 0; f < frames; ++f) {
    for (int y = 0; y < s.rows; ++y) {
      for (int x = 0; x < s.columns; ++x) {
        for (int c = 0; c < samples; ++c) {
          double v = 0.5 + 0.3 * std::sin(x / 9.0 + c) * std::cos(y / 7.0 - f) + 0.1 * f / frames;
          v = std::round(v * top) + static_cast<int>(rng() % 3) - 1;
          v = std::min(std::max(v, 0.0), top);
          if (is_signed) v -= std::ldexp(1.0, bits_stored - 1);
          s.values.push_back(static_cast<std::int32_t>(v));
        }
      }
    }
  }
  return s;
}

dicom::StoredPixels stored(const test::fs::path& p) { return dicom::read_stored_pixels(p.string()); }

std::vector<double> as_doubles(const dicom::StoredPixels& px) {
  std::vector<double> out;
  const std::size_t b = bytes_per_sample(px.type);
  for (std::size_t i = 0; i < px.data.size() / b; ++i) {
    const std::uint8_t* p = px.data.data() + i * b;
    switch (px.type) {
      case PixelType::kUInt8: out.push_back(*p); break;
      case PixelType::kInt8: out.push_back(static_cast<std::int8_t>(*p)); break;
      case PixelType::kUInt16: { std::uint16_t v; std::memcpy(&v, p, 2); out.push_back(v); break; }
      case PixelType::kInt16: { std::int16_t v; std::memcpy(&v, p, 2); out.push_back(v); break; }
      case PixelType::kUInt32: { std::uint32_t v; std::memcpy(&v, p, 4); out.push_back(v); break; }
      case PixelType::kInt32: { std::int32_t v; std::memcpy(&v, p, 4); out.push_back(v); break; }
      default: { float v; std::memcpy(&v, p, 4); out.push_back(v); break; }
    }
  }
  return out;
}

double psnr(const dicom::StoredPixels& a, const dicom::StoredPixels& b, int bits) {
  const auto x = as_doubles(a), y = as_doubles(b);
  REQUIRE(x.size() == y.size());
  double mse = 0;
  for (std::size_t i = 0; i < x.size(); ++i) mse += (x[i] - y[i]) * (x[i] - y[i]);
  mse /= static_cast<double>(x.size());
  const double peak = std::ldexp(1.0, bits) - 1;
  return mse == 0 ? 999.0 : 10.0 * std::log10(peak * peak / mse);
}

// An Image's samples viewed as StoredPixels (one frame), for psnr().
dicom::StoredPixels as_pixels(const Image& image) {
  dicom::StoredPixels p;
  p.type = image.pixel_type();
  p.frames = 1;
  p.rows = static_cast<std::uint32_t>(image.height());
  p.columns = static_cast<std::uint32_t>(image.width());
  p.samples = static_cast<std::uint32_t>(image.channels());
  const auto* bytes = static_cast<const std::uint8_t*>(image.data());
  p.data.assign(bytes, bytes + image.size_bytes());
  return p;
}

// PSNR between frame `f` of two files as read_instance gives them (modality values, or RGB).
double frame_psnr(const test::fs::path& a, const test::fs::path& b, std::uint32_t f, std::size_t channels, int bits) {
  dicom::ReadOptions o;
  o.frame = f;
  const Image x = dicom::read_image(a.string(), o);
  const Image y = dicom::read_image(b.string(), o);
  REQUIRE(x.channels() == channels);
  REQUIRE(y.channels() == channels);
  return psnr(as_pixels(x), as_pixels(y), bits);
}

void require_same(const dicom::StoredPixels& a, const dicom::StoredPixels& b) {
  REQUIRE(a.type == b.type);
  REQUIRE(a.frames == b.frames);
  REQUIRE(a.rows == b.rows);
  REQUIRE(a.columns == b.columns);
  REQUIRE(a.samples == b.samples);
  REQUIRE(a.data.size() == b.data.size());
  CHECK(std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0);
}

std::string zlib_raw_deflate(const std::string& in) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// One frame's native bytes of a spec (frames_of_data == 1 view of frame f).
std::string frame_bytes(const DicomSpec& s, std::uint32_t f) {
  DicomSpec one = s;
  one.frames_of_data = 1;
  const std::size_t n = std::size_t{s.rows} * s.columns * s.samples_per_pixel;
  one.values.assign(s.values.begin() + static_cast<std::ptrdiff_t>(f * n),
                    s.values.begin() + static_cast<std::ptrdiff_t>((f + 1) * n));
  std::string bytes = test::native_pixel_bytes(one);
  if (s.bits_allocated == 1) bytes.resize((n + 7) / 8);
  return bytes;
}

// A literal-only PackBits encoding (valid RLE; real runs come from dcmcrle in the other cases).
std::string rle_literal_segment(const std::string& bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 128) {
    const std::size_t n = std::min<std::size_t>(128, bytes.size() - i);
    out.push_back(static_cast<char>(n - 1));
    out.append(bytes, i, n);
  }
  if (out.size() % 2 == 1) out.push_back(static_cast<char>(0x80));  // no-op byte pads to even
  return out;
}

std::string rle_frame_one_segment(const std::string& segment) {
  std::string header(64, '\0');
  header[0] = 1;
  header[4] = 64;
  return header + rle_literal_segment(segment);
}

}  // namespace

TEST_CASE("uncompressed syntaxes from dcmconv decode bit-exact", "[dicom][codecs]") {
  test::TempDir dir;
  const DicomSpec s = smooth_spec(16, 12, true, 1, 3);
  test::write_dicom(dir / "src.dcm", s);
  const auto ref = stored(dir / "src.dcm");
  CHECK(ref.frames == 3);
  for (const char* flag : {"+ti", "+tb", "+td"}) {
    INFO(flag);
    const auto out = dir / (std::string("conv") + flag + ".dcm");
    REQUIRE(test::run_command(std::string("dcmconv ") + flag + " " + (dir / "src.dcm").string() + " " + out.string()) == 0);
    require_same(ref, stored(out));
  }
}

TEST_CASE("JPEG, JPEG-LS and RLE from DCMTK's encoders decode bit-exact or above 40 dB", "[dicom][codecs]") {
  test::TempDir dir;
  struct Case {
    const char* name;
    DicomSpec spec;
  };
  const std::vector<Case> sources = {{"mono16s12", smooth_spec(16, 12, true, 1, 3)},
                                     {"mono16u12", smooth_spec(16, 12, false, 1, 2)},
                                     {"mono8", smooth_spec(8, 8, false, 1, 2)},
                                     {"rgb8", smooth_spec(8, 8, false, 3, 2)}};
  struct Tool {
    const char* command;
    const char* uid;
    bool lossy;
    bool rgb_only;   // skip for grayscale sources
    bool needs8;     // baseline JPEG: 8-bit only
    bool unsigned_only;  // dcmcjpls near-lossless refuses signed input
  };
  const std::vector<Tool> tools = {
      {"dcmcjpeg +e1", "1.2.840.10008.1.2.4.70", false, false, false, false},
      {"dcmcjpeg +el", "1.2.840.10008.1.2.4.57", false, false, false, false},
      {"dcmcjpeg +eb +q 95", "1.2.840.10008.1.2.4.50", true, false, true, false},
      {"dcmcjpeg +ee +q 95", "1.2.840.10008.1.2.4.51", true, false, false, false},
      {"dcmcjpls +el", "1.2.840.10008.1.2.4.80", false, false, false, false},
      {"dcmcjpls +en +md 2", "1.2.840.10008.1.2.4.81", true, false, false, true},
      {"dcmcrle", "1.2.840.10008.1.2.5", false, false, false, false},
  };
  for (const Case& c : sources) {
    const auto src = dir / (std::string(c.name) + ".dcm");
    test::write_dicom(src, c.spec);
    const auto ref = stored(src);
    for (const Tool& t : tools) {
      if (t.needs8 && c.spec.bits_allocated != 8) continue;
      if (t.unsigned_only && c.spec.pixel_signed) continue;
      INFO(c.name << " via " << t.command);
      const auto out = dir / (std::string(c.name) + "-" + std::to_string(&t - tools.data()) + ".dcm");
      REQUIRE(test::run_command(std::string(t.command) + " " + src.string() + " " + out.string()) == 0);
      const dicom::ImageHeader h = dicom::read_header(out.string());
      CHECK(h.transfer_syntax_uid == t.uid);
      const auto got = stored(out);
      if (!t.lossy) {
        require_same(ref, got);
        continue;
      }
      if (c.spec.samples_per_pixel == 3 && got.photometric == "YBR_FULL") {
        // JPEG's YCbCr stays YCbCr in stored values; compare after read_instance's conversion.
        for (std::uint32_t f = 0; f < got.frames; ++f) CHECK(frame_psnr(src, out, f, 3, 8) >= 40.0);
      } else if (c.spec.samples_per_pixel == 1) {
        // DCMTK's lossy encoders may store signed data unsigned with a new intercept: compare the
        // modality values (what a model sees), frame by frame, against the 12-bit peak.
        CHECK(got.photometric == ref.photometric);
        for (std::uint32_t f = 0; f < got.frames; ++f) CHECK(frame_psnr(src, out, f, 1, c.spec.bits_stored) >= 40.0);
      } else {
        CHECK(got.photometric == ref.photometric);
        CHECK(psnr(ref, got, c.spec.bits_stored) >= 40.0);
      }
    }
  }
}

TEST_CASE("JPEG 2000 from opj_compress decodes bit-exact (lossless) or above 40 dB (lossy)", "[dicom][codecs]") {
  test::TempDir dir;
  for (const bool rgb : {false, true}) {
    DicomSpec s = rgb ? smooth_spec(8, 8, false, 3, 2) : smooth_spec(16, 12, false, 1, 2);
    test::write_dicom(dir / "src.dcm", s);
    const auto ref = stored(dir / "src.dcm");
    for (const bool lossy : {false, true}) {
      INFO((rgb ? "rgb " : "mono ") << (lossy ? "lossy" : "lossless"));
      std::vector<std::string> frames;
      for (std::uint32_t f = 0; f < s.frames_of_data; ++f) {
        // opj_compress reads .rawl as little-endian component planes.
        DicomSpec plane = s;
        plane.planar_configuration = 1;
        const std::string raw = frame_bytes(plane, f);
        test::write_text(dir / "f.rawl", raw);
        const std::string cmd = "opj_compress -i " + (dir / "f.rawl").string() + " -o " + (dir / "f.j2k").string() +
                                " -F " + std::to_string(s.columns) + "," + std::to_string(s.rows) + "," +
                                std::to_string(s.samples_per_pixel) + "," + std::to_string(s.bits_stored) + ",u" +
                                (lossy ? " -r 8" : "");
        REQUIRE(test::run_command(cmd) == 0);
        frames.push_back(test::read_text(dir / "f.j2k"));
      }
      DicomSpec enc = s;
      if (rgb) enc.photometric = lossy ? "YBR_ICT" : "YBR_RCT";  // opj_compress applies the MCT to 3 components
      const auto out = dir / "j2k.dcm";
      test::write_encapsulated(out, enc, lossy ? "1.2.840.10008.1.2.4.91" : "1.2.840.10008.1.2.4.90", frames);
      const auto got = stored(out);
      CHECK(got.photometric == (rgb ? "RGB" : "MONOCHROME2"));
      if (lossy) {
        CHECK(psnr(ref, got, s.bits_stored) >= 40.0);
      } else {
        require_same(ref, got);
      }
      // One frame without the others.
      dicom::ReadOptions o;
      o.frame = 1;
      o.apply_modality_lut = false;
      const Image one = dicom::read_image(out.string(), o);
      CHECK(std::memcmp(one.data(), got.data.data() + got.frame_bytes(), got.frame_bytes()) == 0);
    }
  }
}

TEST_CASE("Deflated Image Frame Compression and 1-bit RLE decode bit-exact", "[dicom][codecs]") {
  test::TempDir dir;
  SECTION("deflated frames, 16-bit") {
    const DicomSpec s = smooth_spec(16, 12, true, 1, 3);
    test::write_dicom(dir / "src.dcm", s);
    std::vector<std::string> frames;
    for (std::uint32_t f = 0; f < 3; ++f) frames.push_back(zlib_raw_deflate(frame_bytes(s, f)));
    // DCMTK 3.6.7 does not know 1.2.840.10008.1.2.8.1: write as JPEG 2000, then patch the UID.
    test::write_encapsulated(dir / "dfl.dcm", s, "1.2.840.10008.1.2.4.90", frames);
    test::patch_transfer_syntax(dir / "dfl.dcm", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.8.1");
    const auto got = stored(dir / "dfl.dcm");
    CHECK(dicom::read_header((dir / "dfl.dcm").string()).transfer_syntax_name == "Deflated Image Frame Compression");
    require_same(stored(dir / "src.dcm"), got);
  }
  SECTION("1-bit, frames not byte aligned: native and RLE") {
    DicomSpec s;
    s.rows = 13;
    s.columns = 11;  // 143 bits per frame
    s.bits_allocated = s.bits_stored = 1;
    s.pixel_signed = false;
    s.write_rescale = false;
    s.frames_of_data = 3;
    s.number_of_frames = "3";
    std::mt19937 rng(3);
    for (int i = 0; i < 13 * 11 * 3; ++i) s.values.push_back(static_cast<std::int32_t>(rng() % 2));
    test::write_dicom(dir / "bits.dcm", s);
    const auto native = stored(dir / "bits.dcm");
    REQUIRE(native.type == PixelType::kUInt8);
    for (std::size_t i = 0; i < s.values.size(); ++i) REQUIRE(native.data[i] == s.values[i]);
    std::vector<std::string> frames;
    for (std::uint32_t f = 0; f < 3; ++f) frames.push_back(rle_frame_one_segment(frame_bytes(s, f)));
    test::write_encapsulated(dir / "bits_rle.dcm", s, "1.2.840.10008.1.2.5", frames);
    require_same(native, stored(dir / "bits_rle.dcm"));
  }
}

TEST_CASE("pixel semantics: planar configuration, 32-bit, bits stored masking, palette and YBR_FULL", "[dicom][codecs]") {
  test::TempDir dir;
  SECTION("planar configuration 1 comes back interleaved") {
    DicomSpec s = smooth_spec(8, 8, false, 3, 1);
    test::write_dicom(dir / "inter.dcm", s);
    s.planar_configuration = 1;
    test::write_dicom(dir / "planar.dcm", s);
    require_same(stored(dir / "inter.dcm"), stored(dir / "planar.dcm"));
  }
  SECTION("32-bit signed with 20 bits stored is masked and sign-extended") {
    DicomSpec s;
    s.rows = 2;
    s.columns = 2;
    s.bits_allocated = 32;
    s.bits_stored = 20;
    s.pixel_signed = true;
    // High bits beyond Bits Stored carry garbage the reader must drop.
    s.values = {static_cast<std::int32_t>(0xABC00001u), static_cast<std::int32_t>(0x000FFFFFu), 0x00080000, 5};
    test::write_dicom(dir / "i32.dcm", s);
    const auto px = stored(dir / "i32.dcm");
    REQUIRE(px.type == PixelType::kInt32);
    const auto v = as_doubles(px);
    CHECK(v == std::vector<double>{1, -1, -524288, 5});
  }
  SECTION("MONOCHROME1 inversion is explicit") {
    DicomSpec s;
    s.rows = 1;
    s.columns = 3;
    s.bits_allocated = 16;
    s.bits_stored = 12;
    s.pixel_signed = false;
    s.photometric = "MONOCHROME1";
    s.slope = "1";
    s.intercept = "0";
    s.values = {0, 100, 4095};
    test::write_dicom(dir / "m1.dcm", s);
    const Image plain = dicom::read_image((dir / "m1.dcm").string());
    CHECK(static_cast<const float*>(plain.data())[1] == 100.0f);
    dicom::ReadOptions o;
    o.invert_monochrome1 = true;
    const Image inv = dicom::read_image((dir / "m1.dcm").string(), o);
    const float* p = static_cast<const float*>(inv.data());
    CHECK(p[0] == 4095.0f);
    CHECK(p[1] == 3995.0f);
    CHECK(p[2] == 0.0f);
    CHECK(dicom::read_header((dir / "m1.dcm").string()).photometric_interpretation == "MONOCHROME1");
  }
  SECTION("YBR_FULL converts to RGB on request and stays YCbCr in stored values") {
    DicomSpec s;
    s.rows = 1;
    s.columns = 2;
    s.bits_allocated = s.bits_stored = 8;
    s.pixel_signed = false;
    s.samples_per_pixel = 3;
    s.photometric = "YBR_FULL";
    s.write_rescale = false;
    s.values = {128, 128, 128, 76, 85, 255};  // grey, then pure red (Y 76, Cb 85, Cr 255)
    test::write_dicom(dir / "ybr.dcm", s);
    CHECK(stored(dir / "ybr.dcm").photometric == "YBR_FULL");
    const Image rgb = dicom::read_image((dir / "ybr.dcm").string());
    const auto* p = static_cast<const std::uint8_t*>(rgb.data());
    CHECK((p[0] == 128 && p[1] == 128 && p[2] == 128));
    CHECK(p[3] >= 253);
    CHECK(p[4] <= 2);
    CHECK(p[5] <= 2);
    dicom::ReadOptions raw;
    raw.convert_color = false;
    CHECK(static_cast<const std::uint8_t*>(dicom::read_image((dir / "ybr.dcm").string(), raw).data())[3] == 76);
  }
}

TEST_CASE("a bare dataset from a network receiver is read from memory with its transfer syntax", "[dicom][codecs]") {
  test::TempDir dir;
  DicomSpec s;
  s.part10 = false;
  s.sop_uid = "1.2.826.0.1.3680043.9.7777.42";
  s.syntax = test::Syntax::kImplicitLittle;
  test::write_dicom(dir / "bare.dcm", s);
  s.part10 = true;
  test::write_dicom(dir / "file.dcm", s);
  const std::string bytes = test::read_text(dir / "bare.dcm");
  dicom::ReadOptions o;
  o.transfer_syntax_uid = "1.2.840.10008.1.2";
  const auto a = dicom::read_instance_from_memory(bytes.data(), bytes.size(), "c-store", o);
  const auto b = dicom::read_instance((dir / "file.dcm").string());
  REQUIRE(a.image.size_bytes() == b.image.size_bytes());
  CHECK(std::memcmp(a.image.data(), b.image.data(), a.image.size_bytes()) == 0);
  CHECK(a.header.sop_instance_uid == b.header.sop_instance_uid);
  const std::string file = test::read_text(dir / "file.dcm");
  const auto c = dicom::read_stored_pixels_from_memory(file.data(), file.size(), "buffer");
  CHECK(c.rows == 8);
}

TEST_CASE("truncation at any offset and corrupt codestreams end in a medinfer::Error, never a crash",
          "[dicom][codecs][errors]") {
  test::TempDir dir;
  const DicomSpec s = smooth_spec(16, 12, false, 1, 2);
  test::write_dicom(dir / "src.dcm", s);
  std::vector<test::fs::path> files = {dir / "src.dcm"};
  for (const char* cmd : {"dcmcjpls", "dcmcrle", "dcmcjpeg", "dcmconv +td"}) {
    const auto out = dir / (std::string(cmd).substr(0, 6) + std::to_string(files.size()) + ".dcm");
    REQUIRE(test::run_command(std::string(cmd) + " " + (dir / "src.dcm").string() + " " + out.string()) == 0);
    files.push_back(out);
  }
  std::mt19937 rng(11);
  for (const auto& f : files) {
    const std::string bytes = test::read_text(f);
    INFO(f.filename().string());
    // Truncated: every cut fails cleanly (or, past the last pixel byte, still decodes the same).
    for (std::size_t cut = 0; cut < bytes.size(); cut += 1 + bytes.size() / 97) {
      const std::string part = bytes.substr(0, cut);
      try {
        dicom::read_stored_pixels_from_memory(part.data(), part.size(), "cut");
      } catch (const Error& e) {
        CHECK((e.code() == ErrorCode::kInvalidDicom || e.code() == ErrorCode::kUnsupported));
      }
    }
    // Corrupt: random bytes overwritten after the header.
    for (int trial = 0; trial < 40; ++trial) {
      std::string bad = bytes;
      for (int k = 0; k < 8; ++k) bad[400 + rng() % (bad.size() - 400)] = static_cast<char>(rng());
      try {
        dicom::read_stored_pixels_from_memory(bad.data(), bad.size(), "corrupt");
      } catch (const Error& e) {
        CHECK(e.code() != ErrorCode::kInternal);
      }
    }
  }
}

TEST_CASE("absurd dimensions, frame counts and sizes fail with kResourceLimit before allocation", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 4;
  s.columns = 4;
  s.number_of_frames = "4000000000";
  test::write_dicom(dir / "frames.dcm", s);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "frames.dcm").string()); }, &msg) == ErrorCode::kResourceLimit);
  CHECK_THAT(msg, Catch::Contains("NumberOfFrames") && Catch::Contains("max_frames"));
  s.number_of_frames = "5000";
  test::write_dicom(dir / "big.dcm", s);
  dicom::ReadOptions o;
  o.max_pixel_bytes = 4 * 4 * 2 * 100;
  CHECK(error_code_of([&] { dicom::read_stored_pixels((dir / "big.dcm").string(), o); }, &msg) ==
        ErrorCode::kResourceLimit);
  CHECK_THAT(msg, Catch::Contains("max_pixel_bytes"));
  // A small file whose sequence item claims 4 GB: refused from the declared length, not allocated.
  const std::string bytes = test::read_text(dir / "big.dcm");
  std::size_t meta_end = 132;  // File Meta elements are explicit VR little endian; only OB has a long length
  while (meta_end + 8 <= bytes.size() && bytes[meta_end] == 0x02 && bytes[meta_end + 1] == 0x00) {
    if (bytes[meta_end + 4] == 'O' && bytes[meta_end + 5] == 'B') {
      std::uint32_t len;
      std::memcpy(&len, &bytes[meta_end + 8], 4);
      meta_end += 12 + len;
    } else {
      std::uint16_t len;
      std::memcpy(&len, &bytes[meta_end + 6], 2);
      meta_end += 8 + len;
    }
  }
  const std::string crafted = bytes.substr(0, meta_end) + std::string("\x08\x00\x15\x11SQ\0\0\xFF\xFF\xFF\xFF", 12) +
                              std::string("\xFE\xFF\x00\xE0\xF0\xFF\xFF\xFF", 8) + std::string(64, 'x');
  CHECK(error_code_of([&] { dicom::read_stored_pixels_from_memory(crafted.data(), crafted.size(), "crafted"); },
                      &msg) == ErrorCode::kInvalidDicom);
  CHECK_THAT(msg, Catch::Contains("crafted") && Catch::Contains("declares 4294967280 bytes"));
}
