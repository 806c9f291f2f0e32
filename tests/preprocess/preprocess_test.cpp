#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <cmath>
#include <cstring>

using namespace medinfer;
using namespace medinfer::preprocess;
using test::error_code_of;

namespace {

Image ramp(std::size_t w, std::size_t h) {
  Image img(PixelType::kFloat32, w, h);
  auto* p = static_cast<float*>(img.mutable_data());
  for (std::size_t i = 0; i < w * h; ++i) p[i] = static_cast<float>(i);
  return img;
}

}  // namespace

namespace {
NormalizeStep fixed_normalize(double mean, double std) {
  NormalizeStep n;
  n.mean = mean;
  n.std = std;
  return n;
}
}  // namespace

TEST_CASE("window maps [c - w/2, c + w/2] onto [0, 1] and clips outside", "[preprocess]") {
  Image img(PixelType::kInt16, 5, 1);
  const std::int16_t v[5] = {-1000, -160, 40, 240, 3000};
  std::memcpy(img.mutable_data(), v, sizeof v);
  const Tensor t = apply(Spec{{WindowStep{40, 400}}}, img);
  REQUIRE(t.shape == std::vector<std::int64_t>{1, 1, 1, 5});
  CHECK(t.data[0] == 0.0f);
  CHECK(t.data[1] == Approx(0.0).margin(1e-6));
  CHECK(t.data[2] == Approx(0.5).margin(1e-6));
  CHECK(t.data[3] == Approx(1.0).margin(1e-6));
  CHECK(t.data[4] == 1.0f);
}

TEST_CASE("area resize by an integer factor is the block mean", "[preprocess]") {
  const Image img = ramp(8, 4);
  const Tensor t = apply(Spec{{ResizeStep{2, 1, Interpolation::kArea}}}, img);
  REQUIRE(t.shape == std::vector<std::int64_t>{1, 1, 1, 2});
  // left 4x4 block: mean of rows 0..3, cols 0..3 of a ramp with stride 8
  double left = 0, right = 0;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) left += y * 8 + x, right += y * 8 + x + 4;
  CHECK(t.data[0] == Approx(left / 16).epsilon(1e-6));
  CHECK(t.data[1] == Approx(right / 16).epsilon(1e-6));
}

TEST_CASE("normalize subtracts the mean and divides by the std", "[preprocess]") {
  const Image img = ramp(3, 1);
  const Tensor t = apply(Spec{{fixed_normalize(1.0, 0.5)}}, img);
  CHECK(t.data == std::vector<float>{-2.0f, 0.0f, 2.0f});
}

TEST_CASE("steps run in the declared order", "[preprocess]") {
  const Image img = ramp(4, 4);
  const Tensor a = apply(Spec{{WindowStep{8, 16}, fixed_normalize(0.5, 0.25)}}, img);
  const Tensor b = apply(Spec{{fixed_normalize(0.5, 0.25), WindowStep{8, 16}}}, img);
  CHECK(a.data != b.data);
  CHECK(a.data[0] == Approx((0.0 / 16 - 0.5) / 0.25));
}

TEST_CASE("parse_spec reads the manifest's preprocessing array", "[preprocess]") {
  const Spec s = parse_spec(R"([{"step":"window","center":40,"width":400},
                                {"step":"resize","width":64,"height":32,"interpolation":"linear"},
                                {"step":"normalize","mean":0.1,"std":2}])");
  REQUIRE(s.steps.size() == 3);
  CHECK(std::get<WindowStep>(s.steps[0]).width == 400);
  CHECK(std::get<ResizeStep>(s.steps[1]).height == 32);
  CHECK(std::get<ResizeStep>(s.steps[1]).interpolation == Interpolation::kLinear);
  CHECK(std::get<NormalizeStep>(s.steps[2]).std == 2);
}

TEST_CASE("parse_spec names the step index and field of every invalid value", "[preprocess][errors]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"step":"window"})", "expected an array"},
      {R"([{"step":"blur","sigma":2}])", "preprocessing[0].step: unknown step 'blur'"},
      {R"([{"center":40,"width":400}])", "preprocessing[0].step: missing"},
      {R"([{"step":"window","center":"40","width":400}])", "preprocessing[0].center: expected a number"},
      {R"([{"step":"window","center":40,"width":0}])", "preprocessing[0].width: must be finite and > 0"},
      {R"([{"step":"window","center":40,"width":400},{"step":"resize","width":0,"height":4}])",
       "preprocessing[1].width: must be in 1..16384"},
      {R"([{"step":"resize","width":2.5,"height":4}])", "preprocessing[0].width: expected an integer"},
      {R"([{"step":"resize","width":4,"height":4,"interpolation":"lanczos"}])", "preprocessing[0].interpolation"},
      {R"([{"step":"normalize","mean":0,"std":-1}])", "preprocessing[0].std"},
      {R"([{"step":"window","centre":40,"width":400,"center":1}])", "preprocessing[0].centre: unknown field"},
      {R"([{"step":"window", )", "not valid JSON"},
  };
  for (const auto& [json, expected] : cases) {
    std::string msg;
    INFO(json);
    CHECK(error_code_of([&] { parse_spec(json); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains(expected));
  }
}

TEST_CASE("apply rejects empty images and channel counts other than 1 and 3", "[preprocess][errors]") {
  CHECK(error_code_of([] { apply(Spec{}, Image()); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { apply(Spec{}, Image(PixelType::kUInt8, 2, 2, 2)); }) == ErrorCode::kInvalidArgument);
  CHECK(apply(Spec{}, Image(PixelType::kUInt8, 2, 2, 3)).shape == std::vector<std::int64_t>{1, 3, 2, 2});
  std::string msg;
  CHECK(error_code_of([] { apply(parse_spec(R"([{"step":"channels","replicate":3}])"), Image(PixelType::kUInt8, 2, 2, 3)); },
                      &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("color step"));
}

TEST_CASE("apply accepts every pixel type", "[preprocess]") {
  for (PixelType t : {PixelType::kUInt8, PixelType::kInt8, PixelType::kUInt16, PixelType::kInt16, PixelType::kUInt32,
                      PixelType::kInt32, PixelType::kFloat32, PixelType::kFloat64}) {
    Image img(t, 2, 1);
    auto* p = static_cast<unsigned char*>(img.mutable_data());
    p[0] = 3;  // the lowest byte of the first sample: value 3 in every little-endian integer type
    const Tensor out = apply(Spec{}, img);
    INFO(to_string(t));
    if (t != PixelType::kFloat32 && t != PixelType::kFloat64) CHECK(out.data[0] == 3.0f);
    CHECK(out.data[1] == 0.0f);
  }
}

TEST_CASE("window from_file uses the file's VOI window, else its own center/width", "[preprocess]") {
  Image img(PixelType::kFloat32, 3, 1);
  const float v[3] = {-160, 40, 240};
  std::memcpy(img.mutable_data(), v, sizeof v);
  const Spec spec = parse_spec(R"([{"step":"window","from_file":true,"center":0,"width":2000}])");
  Context file;
  file.has_file_window = true;
  file.file_window_center = 40;
  file.file_window_width = 400;
  const Tensor with = apply(spec, img, file);  // the file's LINEAR is DICOM's: (x - (c - 0.5)) / (w - 1) + 0.5
  CHECK(with.data[0] == Approx(0.0).margin(1e-6));
  CHECK(with.data[1] == Approx(0.5 / 399.0 + 0.5).margin(1e-6));
  CHECK(with.data[2] == Approx(1.0).margin(1e-6));
  file.file_window_function = "LINEAR_EXACT";
  CHECK(apply(spec, img, file).data[1] == Approx(0.5).margin(1e-6));
  file.file_window_function = "SIGMOID";
  CHECK(apply(spec, img, file).data[2] == Approx(1.0 / (1.0 + std::exp(-4.0 * 200.0 / 400.0))).margin(1e-6));
  const Tensor without = apply(spec, img);  // no VOI in the file: the step's own window
  CHECK(without.data[1] == Approx((40.0 + 1000.0) / 2000.0).margin(1e-6));
  std::string msg;
  CHECK(error_code_of([] { parse_spec(R"([{"step":"window","from_file":1,"center":0,"width":2}])"); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("preprocessing[0].from_file"));
}

TEST_CASE("apply_batch writes every image into one batch tensor, equal to one-by-one", "[preprocess]") {
  const Spec spec = parse_spec(R"([{"step":"window","center":8,"width":16},{"step":"resize","width":4,"height":2},
                                   {"step":"channels","replicate":2}])");
  std::vector<Image> images;
  for (int i = 0; i < 3; ++i) {
    Image img(PixelType::kFloat32, 8, 4 + 4 * i);  // different input sizes, same output size
    auto* p = static_cast<float*>(img.mutable_data());
    for (std::size_t k = 0; k < img.width() * img.height(); ++k) p[k] = static_cast<float>((k * (i + 3)) % 17);
    images.push_back(img);
  }
  const Tensor batch = apply_batch(spec, images);
  REQUIRE(batch.shape == std::vector<std::int64_t>{3, 2, 2, 4});
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Tensor one = apply(spec, images[i]);
    REQUIRE(one.data.size() == 16);
    CHECK(std::equal(one.data.begin(), one.data.end(), batch.data.begin() + static_cast<std::ptrdiff_t>(16 * i)));
  }
  std::string msg;
  const Spec no_resize = parse_spec(R"([{"step":"window","center":8,"width":16}])");
  CHECK(error_code_of([&] { apply_batch(no_resize, images); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("image 1"));
  CHECK(error_code_of([&] { apply_batch(spec, {}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { apply_batch(spec, images, std::vector<Context>(2)); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("apply validates a hand-built spec as apply_volume does (one step table, one validation)",
          "[preprocess][errors]") {
  Spec spec;
  ResizeStep bad;
  bad.width = 0;  // what parse_spec refuses; before, apply() handed it to OpenCV
  bad.height = 8;
  spec.steps.emplace_back(bad);
  std::string message;
  CHECK(error_code_of([&] { apply(spec, ramp(16, 16)); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("preprocessing[0].width"));
  Volume v(PixelType::kFloat32, 16, 16, 2);
  CHECK(error_code_of([&] { apply_volume(spec, v); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("preprocessing[0].width"));
}

TEST_CASE("a percentile window gives the same values on an image and on a one-slice volume", "[preprocess]") {
  const Spec spec = parse_spec(R"([{"step": "window", "percentiles": [5, 90]}])");
  const Image image = ramp(32, 24);
  Volume v(PixelType::kFloat32, 32, 24, 1);
  std::memcpy(v.mutable_data(), image.data(), image.size_bytes());
  const Tensor a = apply(spec, image);
  const Tensor b = apply_volume(spec, v);
  REQUIRE(a.data.size() == b.data.size());
  for (std::size_t i = 0; i < a.data.size(); ++i) REQUIRE(a.data[i] == Approx(b.data[i]).margin(1e-6));
  CHECK(*std::min_element(a.data.begin(), a.data.end()) == 0.0f);
  CHECK(*std::max_element(a.data.begin(), a.data.end()) == 1.0f);
}
