#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <cmath>
#include <limits>

using namespace medinfer;
using namespace medinfer::calibration;
using test::error_code_of;

TEST_CASE("temperature scaling computes sigmoid(logit / T)", "[calibration]") {
  const TemperatureScaling t(2.0);
  CHECK(t.apply(0.0) == 0.5);
  CHECK(t.apply(2.0) == Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-15));
  CHECK(t.apply(-3.0) == Approx(1.0 / (1.0 + std::exp(1.5))).epsilon(1e-15));
  CHECK(TemperatureScaling(1.0).apply(1.0) == Approx(0.7310585786300049).epsilon(1e-15));
}

TEST_CASE("a temperature above 1 softens, below 1 sharpens", "[calibration]") {
  CHECK(TemperatureScaling(3.0).apply(2.0) < TemperatureScaling(1.0).apply(2.0));
  CHECK(TemperatureScaling(0.5).apply(2.0) > TemperatureScaling(1.0).apply(2.0));
}

TEST_CASE("temperature scaling is stable for extreme logits", "[calibration]") {
  const TemperatureScaling t(1.0);
  CHECK(t.apply(1000.0) == 1.0);
  CHECK(t.apply(-1000.0) == 0.0);
  CHECK(t.apply(-745.0) >= 0.0);
  CHECK(std::isfinite(t.apply(-700.0)));
}

TEST_CASE("invalid temperatures and logits are rejected", "[calibration][errors]") {
  CHECK(error_code_of([] { TemperatureScaling(0.0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { TemperatureScaling(-1.0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { TemperatureScaling(std::nan("")); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { TemperatureScaling(1.0).apply(std::nan("")); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { TemperatureScaling(1.0).apply(std::numeric_limits<double>::infinity()); }) ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("parse_calibration reads the manifest's calibration object and names bad fields", "[calibration]") {
  CHECK(parse_calibration(R"({"method":"temperature","temperature":1.5})").temperature() == 1.5);
  std::string msg;
  CHECK(error_code_of([&] { parse_calibration(R"({"method":"isotonic"})"); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("calibration.method"));
  CHECK(error_code_of([&] { parse_calibration(R"({"method":"temperature"})"); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("calibration.temperature: missing"));
  CHECK(error_code_of([&] { parse_calibration(R"({"method":"temperature","temperature":-2})"); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { parse_calibration(R"([1])"); }, &msg) == ErrorCode::kInvalidArgument);
}
