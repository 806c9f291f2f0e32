#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <cstring>
#include <fstream>

using namespace medinfer;
using test::DicomSpec;
using test::Syntax;
using test::error_code_of;
using dicom::Instance;

namespace {

const float* floats(const Image& img) { return static_cast<const float*>(img.data()); }

}  // namespace

TEST_CASE("read_image applies RescaleSlope/Intercept to signed 16-bit CT values", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 2;
  s.columns = 3;
  s.values = {0, 1024, 1064, -1, 32767, -32768};
  write_dicom(dir / "ct.dcm", s);
  const auto inst = dicom::read_instance((dir / "ct.dcm").string());
  const Image& img = inst.image;
  REQUIRE(img.pixel_type() == PixelType::kFloat32);
  REQUIRE(img.width() == 3);
  REQUIRE(img.height() == 2);
  const std::vector<float> expect{-1024, 0, 40, -1025, 31743, -33792};
  for (std::size_t i = 0; i < expect.size(); ++i) CHECK(floats(img)[i] == expect[i]);
  CHECK(inst.header.modality == "CT");
  CHECK(inst.header.transfer_syntax_uid == "1.2.840.10008.1.2.1");
  CHECK(inst.header.rescale_intercept == -1024.0);
}

TEST_CASE("read_image handles a fractional slope on unsigned data", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 1;
  s.columns = 3;
  s.pixel_signed = false;
  s.values = {0, 100, 65535};
  s.slope = "0.5";
  s.intercept = "-10";
  write_dicom(dir / "u.dcm", s);
  const Image img = dicom::read_image((dir / "u.dcm").string());
  CHECK(floats(img)[0] == -10.0f);
  CHECK(floats(img)[1] == 40.0f);
  CHECK(floats(img)[2] == Approx(32757.5f));
}

TEST_CASE("read_image masks BitsStored and sign-extends 12-bit data", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 1;
  s.columns = 3;
  s.bits_stored = 12;
  s.write_rescale = false;
  // 0xF800 has garbage above bit 11 -> 0x800 = -2048; 0x07FF = 2047; 0x0FFF = -1
  s.values = {0xF800, 0x07FF, 0x0FFF};
  write_dicom(dir / "b12.dcm", s);
  const Image img = dicom::read_image((dir / "b12.dcm").string());
  CHECK(floats(img)[0] == -2048.0f);
  CHECK(floats(img)[1] == 2047.0f);
  CHECK(floats(img)[2] == -1.0f);
}

TEST_CASE("read_image without the modality LUT returns stored values in their own type", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 1;
  s.columns = 2;
  s.values = {5, -7};
  write_dicom(dir / "raw.dcm", s);
  dicom::ReadOptions opt;
  opt.apply_modality_lut = false;
  const Image img = dicom::read_image((dir / "raw.dcm").string(), opt);
  REQUIRE(img.pixel_type() == PixelType::kInt16);
  CHECK(static_cast<const std::int16_t*>(img.data())[1] == -7);

  DicomSpec e;
  e.rows = 1;
  e.columns = 2;
  e.bits_allocated = 8;
  e.bits_stored = 8;
  e.pixel_signed = false;
  e.values = {3, 250};
  write_dicom(dir / "u8.dcm", e);
  const Image u8 = dicom::read_image((dir / "u8.dcm").string(), opt);
  REQUIRE(u8.pixel_type() == PixelType::kUInt8);
  CHECK(static_cast<const std::uint8_t*>(u8.data())[1] == 250);
}

TEST_CASE("read_image reads Implicit VR Little Endian and Explicit VR Big Endian identically", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 4;
  s.columns = 5;
  write_dicom(dir / "le.dcm", s);
  s.syntax = Syntax::kImplicitLittle;
  write_dicom(dir / "imp.dcm", s);
  s.syntax = Syntax::kExplicitBig;
  write_dicom(dir / "be.dcm", s);
  const Image le = dicom::read_image((dir / "le.dcm").string());
  for (const char* name : {"imp.dcm", "be.dcm"}) {
    const Image other = dicom::read_image((dir / name).string());
    REQUIRE(other.size_bytes() == le.size_bytes());
    CHECK(std::memcmp(other.data(), le.data(), le.size_bytes()) == 0);
  }
}

TEST_CASE("read_image takes spacing, origin and direction from the header", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.pixel_spacing = "0.5\\0.75";  // row spacing (y) \ column spacing (x)
  s.orientation = "0\\1\\0\\0\\0\\-1";  // sagittal
  write_dicom(dir / "geo.dcm", s);
  const Image img = dicom::read_image((dir / "geo.dcm").string());
  CHECK(img.spacing()[0] == 0.75);
  CHECK(img.spacing()[1] == 0.5);
  CHECK(img.origin()[0] == -100.0);
  CHECK(img.origin()[2] == 20.0);
  const auto& d = img.direction();
  CHECK(d[6] == Approx(-1.0));  // normal = row x column = (0,1,0) x (0,0,-1) = (-1,0,0)
  CHECK(d[7] == Approx(0.0));
  CHECK(d[8] == Approx(0.0));
}

TEST_CASE("read_image reports a missing file as kNotFound", "[dicom][errors]") {
  std::string msg;
  CHECK(error_code_of([] { dicom::read_image("/nonexistent/dir/x.dcm"); }, &msg) == ErrorCode::kNotFound);
  CHECK(msg.find("/nonexistent/dir/x.dcm") != std::string::npos);
}

TEST_CASE("read_image rejects a non-DICOM file with kInvalidDicom", "[dicom][errors]") {
  test::TempDir dir;
  test::write_text(dir / "notes.txt", std::string(300, 'x'));
  test::write_text(dir / "tiny", "DICM");
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "notes.txt").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK(msg.find("notes.txt") != std::string::npos);
  CHECK(msg.find("DICM") != std::string::npos);
  CHECK(error_code_of([&] { dicom::read_image((dir / "tiny").string()); }) == ErrorCode::kInvalidDicom);
  CHECK(error_code_of([&] { dicom::read_image(dir.path().string()); }) == ErrorCode::kIo);
}

TEST_CASE("read_image rejects DICOM without Pixel Data, naming the tag", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.pixel_data = false;
  write_dicom(dir / "nopix.dcm", s);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "nopix.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK(msg.find("PixelData (7FE0,0010)") != std::string::npos);
}

TEST_CASE("read_image rejects pixel data shorter than Rows x Columns", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 4;
  s.columns = 4;
  write_dicom(dir / "ok.dcm", s);
  // Same file claiming 8 rows: the pixel data is now half the size it must be.
  s.rows = 8;
  s.values.assign(8 * 4, 1);
  s.columns = 4;
  write_dicom(dir / "big.dcm", s);
  std::string bytes = test::read_text(dir / "ok.dcm");
  const std::string rows_tag("\x28\x00\x10\x00US\x02\x00\x04\x00", 10);
  const auto pos = bytes.find(rows_tag);
  REQUIRE(pos != std::string::npos);
  bytes[pos + 8] = 8;
  test::write_text(dir / "short.dcm", bytes);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "short.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK(msg.find("PixelData") != std::string::npos);
}

TEST_CASE("a Pixel Data length beyond the end of the file fails before anything is allocated", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 16;
  s.columns = 16;
  write_dicom(dir / "ok.dcm", s);
  std::string bytes = test::read_text(dir / "ok.dcm");
  const std::string pixel_tag("\xE0\x7F\x10\x00OW\x00\x00", 8);
  const auto pos = bytes.find(pixel_tag);
  REQUIRE(pos != std::string::npos);
  const std::uint32_t huge = 0xFFFFFFF0u;  // ~4 GB claimed by a ~1 KB file
  std::memcpy(&bytes[pos + 8], &huge, 4);
  test::write_text(dir / "crafted.dcm", bytes);
  std::string msg;
  const ErrorCode code = error_code_of([&] { dicom::read_image((dir / "crafted.dcm").string()); }, &msg);
  INFO(msg);
  CHECK((code == ErrorCode::kInvalidDicom));
  CHECK_THAT(msg, Catch::Contains("crafted.dcm"));
}

TEST_CASE("read_image decodes JPEG lossless to the same values as the uncompressed file", "[dicom]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 8;
  s.columns = 8;
  s.pixel_signed = false;
  write_dicom(dir / "plain.dcm", s);
  s.syntax = Syntax::kJpegLossless;
  write_dicom(dir / "jpeg.dcm", s);
  const Image a = dicom::read_image((dir / "plain.dcm").string());
  const Instance b = dicom::read_instance((dir / "jpeg.dcm").string());
  CHECK(b.header.transfer_syntax_uid == "1.2.840.10008.1.2.4.70");
  REQUIRE(a.size_bytes() == b.image.size_bytes());
  CHECK(std::memcmp(a.data(), b.image.data(), a.size_bytes()) == 0);
}

TEST_CASE("transfer syntaxes that cannot be decoded fail with kUnsupported naming the UID and its name",
          "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.part10 = false;
  write_dicom(dir / "bare.dcm", s);
  const std::string bytes = test::read_text(dir / "bare.dcm");
  dicom::ReadOptions video;
  video.transfer_syntax_uid = "1.2.840.10008.1.2.4.102";
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_instance_from_memory(bytes.data(), bytes.size(), "video", video); }, &msg) ==
        ErrorCode::kUnsupported);
  CHECK_THAT(msg, Catch::Contains("1.2.840.10008.1.2.4.102") && Catch::Contains("H.264"));
  CHECK(dicom::transfer_syntax_name("1.2.840.10008.1.2.4.107").find("HEVC") != std::string::npos);
  CHECK_FALSE(dicom::transfer_syntax_supported("1.2.840.10008.1.2.4.100"));
  CHECK(dicom::transfer_syntax_supported("1.2.840.10008.1.2.4.201"));
}

TEST_CASE("read_image returns colour as RGB and says when a frame count does not match the data", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec rgb;
  rgb.samples_per_pixel = 3;
  rgb.photometric = "RGB";
  rgb.bits_allocated = rgb.bits_stored = 8;
  rgb.pixel_signed = false;
  write_dicom(dir / "rgb.dcm", rgb);
  const Image image = dicom::read_image((dir / "rgb.dcm").string());
  CHECK(image.channels() == 3);
  CHECK(image.pixel_type() == PixelType::kUInt8);
  CHECK(static_cast<const std::uint8_t*>(image.data())[5] == 5);
  DicomSpec mf;
  mf.number_of_frames = "3";  // the header claims 3 frames, the data holds 1
  write_dicom(dir / "mf.dcm", mf);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "mf.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK_THAT(msg, Catch::Contains("PixelData") && Catch::Contains("3 frame(s)"));
}

TEST_CASE("read_image enforces the configured limits with kResourceLimit", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 64;
  s.columns = 32;
  write_dicom(dir / "img.dcm", s);
  dicom::ReadOptions opt;
  opt.max_rows = 32;
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "img.dcm").string(), opt); }, &msg) == ErrorCode::kResourceLimit);
  CHECK(msg.find("Rows") != std::string::npos);
  dicom::ReadOptions small;
  small.max_file_bytes = 1000;
  CHECK(error_code_of([&] { dicom::read_image((dir / "img.dcm").string(), small); }) == ErrorCode::kResourceLimit);
}

TEST_CASE("read_image rejects a zero RescaleSlope", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.slope = "0";
  write_dicom(dir / "zero.dcm", s);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "zero.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK(msg.find("RescaleSlope") != std::string::npos);
}

TEST_CASE("read_image names truncation and a missing PhotometricInterpretation", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = s.columns = 16;
  s.orientation.clear();  // keep the header short: the cut below lands inside the dataset
  write_dicom(dir / "ok.dcm", s);
  const std::string bytes = test::read_text(dir / "ok.dcm");
  const std::string rows_tag("\x28\x00\x10\x00US", 6);
  const auto pos = bytes.find(rows_tag);
  REQUIRE(pos != std::string::npos);
  test::write_text(dir / "cut.dcm", bytes.substr(0, pos + 3));  // mid-element
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_image((dir / "cut.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK_THAT(msg, Catch::Contains("cut.dcm"));
  s.photometric = "";
  write_dicom(dir / "nophoto.dcm", s);
  CHECK(error_code_of([&] { dicom::read_image((dir / "nophoto.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK_THAT(msg, Catch::Contains("PhotometricInterpretation"));
}

TEST_CASE("read_header reads only the start of large files, and still catches their truncation", "[dicom][errors]") {
  test::TempDir dir;
  DicomSpec s;
  s.rows = 512;
  s.columns = 512;  // 512 KB of pixels: beyond the 256 KB header prefix
  s.pixel_signed = false;
  s.values.resize(512 * 512);
  for (std::size_t i = 0; i < s.values.size(); ++i) s.values[i] = static_cast<std::int32_t>(i % 4000);
  write_dicom(dir / "big.dcm", s);
  const auto full = dicom::read_instance((dir / "big.dcm").string());
  const auto header = dicom::read_header((dir / "big.dcm").string());
  CHECK(header.sop_instance_uid == full.header.sop_instance_uid);
  CHECK(header.rows == 512);
  CHECK(header.has_position);
  // Cut the file 1000 bytes short: the header-only read must say so, as the full read does.
  std::string bytes = test::read_text(dir / "big.dcm");
  bytes.resize(bytes.size() - 1000);
  test::write_text(dir / "cut.dcm", bytes);
  std::string msg;
  CHECK(error_code_of([&] { dicom::read_header((dir / "cut.dcm").string()); }, &msg) == ErrorCode::kInvalidDicom);
  CHECK_THAT(msg, Catch::Contains("truncated"));
  CHECK(error_code_of([&] { dicom::read_image((dir / "cut.dcm").string()); }) == ErrorCode::kInvalidDicom);
  // Encapsulated data cannot be settled from a prefix: the whole file is read.
  s.syntax = Syntax::kJpegLossless;
  write_dicom(dir / "big-jpeg.dcm", s);
  CHECK(dicom::read_header((dir / "big-jpeg.dcm").string()).transfer_syntax_uid == "1.2.840.10008.1.2.4.70");
}
