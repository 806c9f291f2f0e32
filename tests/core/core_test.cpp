#include <medinfer/error.hpp>
#include <medinfer/image.hpp>
#include <medinfer/log.hpp>
#include <medinfer/volume.hpp>
#include <medinfer/model.hpp>
#include <medinfer/build_info.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

using namespace medinfer;

TEST_CASE("Error carries its code and message, and codes have stable names", "[core]") {
  const Error e(ErrorCode::kInvalidDicom, "x.dcm: no Pixel Data");
  CHECK(e.code() == ErrorCode::kInvalidDicom);
  CHECK(std::string(e.what()) == "x.dcm: no Pixel Data");
  CHECK(std::string(to_string(ErrorCode::kModelIntegrity)) == "kModelIntegrity");
  CHECK(std::string(to_string(ErrorCode::kAuditFailed)) == "kAuditFailed");
  CHECK(static_cast<int>(ErrorCode::kInvalidArgument) == 1);
  const std::runtime_error& base = e;  // catchable as a standard exception
  CHECK(std::string(base.what()).find("Pixel Data") != std::string::npos);
}

TEST_CASE("Image copies share pixels until one is written (copy-on-write)", "[core]") {
  Image a(PixelType::kInt16, 4, 3);
  CHECK(a.size_bytes() == 4 * 3 * 2);
  static_cast<std::int16_t*>(a.mutable_data())[0] = 7;
  Image b = a;
  CHECK(b.data() == a.data());
  static_cast<std::int16_t*>(b.mutable_data())[0] = 9;
  CHECK(b.data() != a.data());
  CHECK(static_cast<const std::int16_t*>(a.data())[0] == 7);
  CHECK(static_cast<const std::int16_t*>(b.data())[0] == 9);
}

TEST_CASE("Image rejects zero dimensions and invalid geometry", "[core]") {
  CHECK_THROWS_MATCHES(Image(PixelType::kUInt8, 0, 3), Error,
                       Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::kInvalidArgument; }));
  Image img(PixelType::kFloat32, 2, 2);
  CHECK_THROWS_AS(img.set_spacing({0.0, 1.0}), Error);
  CHECK_THROWS_AS(img.set_spacing({1.0, std::nan("")}), Error);
  CHECK_THROWS_AS(img.set_direction({1, 0, 0, 0, std::numeric_limits<double>::infinity(), 0, 0, 0, 1}), Error);
  img.set_spacing({0.5, 0.7});
  CHECK(img.spacing()[1] == 0.7);
  CHECK_THROWS_AS(Image::from_buffer(nullptr, PixelType::kUInt8, 1, 1), Error);
  const float px[4] = {1, 2, 3, 4};
  const Image c = Image::from_buffer(px, PixelType::kFloat32, 2, 2);
  CHECK(std::memcmp(c.data(), px, sizeof px) == 0);
}

TEST_CASE("Image::borrow and Volume::borrow use the caller's memory and copy it before any write", "[core]") {
  auto memory = std::make_shared<std::vector<std::int16_t>>(std::vector<std::int16_t>{1, 2, 3, 4, 5, 6});
  std::weak_ptr<std::vector<std::int16_t>> alive = memory;
  const std::int16_t* px = memory->data();
  {
    Image borrowed = Image::borrow(memory, px, PixelType::kInt16, 3, 2);
    memory.reset();  // the image alone keeps the memory alive now
    REQUIRE_FALSE(alive.expired());
    CHECK(borrowed.borrowed());
    CHECK(borrowed.data() == px);  // no copy
    CHECK(borrowed.size_bytes() == 12);
    const Image copy = borrowed;  // copies share the borrowed memory
    CHECK(copy.data() == px);
    // Even as the only user, a write never goes to the caller's memory: it is copied first.
    auto* mine = static_cast<std::int16_t*>(borrowed.mutable_data());
    CHECK(mine != px);
    CHECK_FALSE(borrowed.borrowed());
    mine[0] = 100;
    CHECK(px[0] == 1);
    CHECK(copy.data() == px);
    CHECK(copy.borrowed());
  }
  CHECK(alive.expired());  // released with the last image that used it
  CHECK_THROWS_AS(Image::borrow(nullptr, nullptr, PixelType::kUInt8, 1, 1), Error);
  const std::uint8_t one = 7;
  CHECK_THROWS_MATCHES(Image::borrow(nullptr, &one, PixelType::kUInt8, 0, 1), Error,
                       Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::kInvalidArgument; }));

  std::vector<float> voxels(2 * 3 * 4, 1.5f);
  Volume v = Volume::borrow(nullptr, voxels.data(), PixelType::kFloat32, 2, 3, 4);
  CHECK(v.borrowed());
  CHECK(v.data() == voxels.data());
  CHECK(v.slice(3).width() == 2);
  static_cast<float*>(v.mutable_data())[0] = -1.0f;
  CHECK(voxels[0] == 1.5f);
  CHECK_FALSE(v.borrowed());
  CHECK_THROWS_AS(Volume::borrow(nullptr, voxels.data(), PixelType::kFloat32, 2, 0, 4), Error);
}

TEST_CASE("the host's log handler receives the library's messages; none by default", "[core]") {
  std::mutex m;
  std::vector<std::string> messages;
  set_log_handler([&](LogLevel, std::string_view msg) {
    std::lock_guard<std::mutex> lock(m);
    messages.emplace_back(msg);
  }, LogLevel::kInfo);
  (void)ModelPackage::open(test::demo_model_dir().string());
  set_log_handler(nullptr);
  REQUIRE(!messages.empty());
  CHECK(std::any_of(messages.begin(), messages.end(),
                    [](const std::string& m) { return m.find("demo-ct-lesion") != std::string::npos; }));
  const auto count = messages.size();
  (void)ModelPackage::open(test::demo_model_dir().string());  // handler removed: nothing more arrives
  CHECK(messages.size() == count);
}

TEST_CASE("a throwing log handler does not break the library", "[core]") {
  set_log_handler([](LogLevel, std::string_view) { throw std::runtime_error("host bug"); }, LogLevel::kDebug);
  CHECK_NOTHROW(ModelPackage::open(test::demo_model_dir().string()));
  set_log_handler(nullptr);
}

TEST_CASE("build_info reports our version and the dependency versions", "[core]") {
  const BuildInfo info = build_info();
  CHECK(info.version == MEDINFER_VERSION_STRING);
  CHECK(std::string(version()) == MEDINFER_VERSION_STRING);
  CHECK(info.libtorch_version.rfind("1.", 0) == 0);
  CHECK(info.opencv_version.rfind("4.", 0) == 0);
  CHECK(info.dcmtk_version.rfind("3.6", 0) == 0);
  CHECK_FALSE(info.compiler.empty());
  if (!info.cuda_compiled) CHECK_FALSE(info.cuda_available);
}
