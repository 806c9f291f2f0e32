#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <cmath>
#include <limits>
#include <random>

using namespace medinfer;
using namespace medinfer::calibration;
using test::error_code_of;

namespace {

// Overconfident synthetic scores: label ~ Bernoulli(sigmoid(z)), score = 3z (so T = 3 is right).
void synthetic(std::size_t n, std::vector<double>& scores, std::vector<int>& labels, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double zi = z(rng);
    labels.push_back(u(rng) < 1.0 / (1.0 + std::exp(-zi)) ? 1 : 0);
    scores.push_back(3.0 * zi);
  }
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

TEST_CASE("each calibrator maps scores as documented", "[calibration]") {
  CHECK(Calibrator().apply(0.0) == 0.5);
  CHECK(Calibrator::temperature(2.0).apply(2.0) == Approx(sigmoid(1.0)).epsilon(1e-15));
  CHECK(Calibrator::platt(-2.0, 0.5).apply(1.0) == Approx(1.0 / (1.0 + std::exp(-2.0 + 0.5))).epsilon(1e-15));
  const auto iso = Calibrator::isotonic({-1.0, 0.0, 2.0}, {0.1, 0.1, 0.9});
  CHECK(iso.apply(-5.0) == 0.1);     // clipped below
  CHECK(iso.apply(1.0) == Approx(0.5));  // linear between fitted points
  CHECK(iso.apply(9.0) == 0.9);      // clipped above
  const auto hist = Calibrator::histogram({0.0, 0.5, 1.0}, {0.2, 0.7});
  CHECK(hist.apply(-1.0) == 0.2);
  CHECK(hist.apply(0.0) == 0.7);     // sigmoid(0) = 0.5 falls in the upper bin
  const auto b = Calibrator::beta(1.0, 1.0, 0.0);  // a = b = 1, c = 0 is the identity on p
  CHECK(b.apply(1.3) == Approx(sigmoid(1.3)).epsilon(1e-12));
  CHECK(Calibrator::temperature(1.0).apply(1000.0) == 1.0);
  CHECK(Calibrator::temperature(1.0).apply(-1000.0) == 0.0);
  CHECK(std::isfinite(Calibrator::beta(2.0, 0.5, 1.0).apply(-800.0)));
}

TEST_CASE("invalid calibrator parameters are refused, naming the parameter", "[calibration][errors]") {
  std::string msg;
  CHECK(error_code_of([] { Calibrator::temperature(0.0); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("calibration.temperature"));
  CHECK(error_code_of([] { Calibrator::temperature(std::nan("")); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::platt(std::numeric_limits<double>::infinity(), 0); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::isotonic({0, 1}, {0.5, 0.4}); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("non-decreasing"));
  CHECK(error_code_of([] { Calibrator::isotonic({0, 0}, {0.1, 0.2}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::isotonic({0, 1}, {0.1, 1.2}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::isotonic({0, 1}, {0.1}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::histogram({0.0, 0.4}, {0.3}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::histogram({0.0, 0.6, 0.5, 1.0}, {0.1, 0.2, 0.3}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::beta(-0.1, 1.0, 0.0); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("calibration.a"));
  CHECK(error_code_of([] { Calibrator().apply(std::nan("")); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("calibrators round-trip through their JSON", "[calibration]") {
  std::vector<double> s;
  std::vector<int> y;
  synthetic(400, s, y);
  for (Method m : {Method::kTemperature, Method::kPlatt, Method::kIsotonic, Method::kHistogram, Method::kBeta}) {
    const Calibrator c = Calibrator::fit(m, s, y);
    const auto back = parse_calibration(c.to_json());
    REQUIRE(back.size() == 1);
    INFO(to_string(m));
    CHECK(back[0].method() == m);
    for (double v : {-7.0, -1.0, 0.0, 0.3, 2.0, 9.0}) CHECK(back[0].apply(v) == c.apply(v));
  }
}

TEST_CASE("parse_calibration refuses invalid JSON, naming the field", "[calibration][errors]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"method":"magic"})", "calibration.method"},
      {R"({"method":"temperature"})", "calibration.temperature: missing"},
      {R"({"method":"temperature","temperature":-2})", "calibration.temperature"},
      {R"({"method":"isotonic","x":[0,1],"y":[0.6,0.2]})", "non-decreasing"},
      {R"({"method":"isotonic","x":[0,1],"y":[0.2,"a"]})", "calibration.y[1]: expected a number"},
      {R"({"method":"platt","a":1})", "calibration.b: missing"},
      {R"({"method":"beta","a":1,"b":1,"c":0,"temperature":2})", "calibration.temperature: unknown field"},
      {R"([{"method":"temperature","temperature":1},{"method":"temperature","temperature":1}])", "2 calibrators for 1"},
      {R"([1])", "expected an object"},
      {R"({"method":)", "not valid JSON"},
  };
  for (const auto& [json, expected] : cases) {
    std::string msg;
    INFO(json);
    CHECK(error_code_of([&] { parse_calibration(json); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains(expected));
  }
  CHECK(parse_calibration(R"([{"method":"temperature","temperature":2}])").at(0).parameters()[0] == 2.0);
}

TEST_CASE("fitting recovers a known temperature and improves calibration", "[calibration]") {
  std::vector<double> s;
  std::vector<int> y;
  synthetic(20000, s, y);
  const Calibrator t = Calibrator::fit(Method::kTemperature, s, y);
  CHECK(t.parameters()[0] == Approx(3.0).epsilon(0.05));
  std::vector<double> raw, cal;
  for (double v : s) raw.push_back(sigmoid(v)), cal.push_back(t.apply(v));
  const Metrics before = compute_metrics(raw, y), after = compute_metrics(cal, y);
  CHECK(after.ece_positive < before.ece_positive / 3);
  CHECK(after.auc == Approx(before.auc).epsilon(1e-12));  // a monotone map keeps the ranking
  for (Method m : {Method::kPlatt, Method::kIsotonic, Method::kHistogram, Method::kBeta}) {
    const Calibrator c = Calibrator::fit(m, s, y);
    std::vector<double> p;
    for (double v : s) p.push_back(c.apply(v));
    INFO(to_string(m));
    CHECK(compute_metrics(p, y).ece_positive < before.ece_positive / 3);
  }
}

TEST_CASE("fitting refuses data it cannot fit", "[calibration][errors]") {
  CHECK(error_code_of([] { Calibrator::fit(Method::kPlatt, {1, 2}, {1}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::fit(Method::kPlatt, {1, 2, 3}, {1, 1, 1}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::fit(Method::kIsotonic, {1, std::nan(""), 3}, {0, 1, 1}); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::fit(Method::kBeta, {1, 2, 3}, {0, 2, 1}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { Calibrator::fit(Method::kTemperature, {3, 2, 1, 0}, {0, 0, 1, 1}); }) ==
        ErrorCode::kInvalidArgument);  // anti-correlated: no T > 0
  CHECK(error_code_of([] { parse_method("magic"); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("metrics on a small hand-computed example", "[calibration][metrics]") {
  const std::vector<double> p = {0.1, 0.4, 0.35, 0.8};
  const std::vector<int> y = {0, 0, 1, 1};
  const Metrics m = compute_metrics(p, y, 0.5);
  CHECK(m.count == 4);
  CHECK(m.positives == 2);
  CHECK(m.auc == Approx(0.75));  // scikit-learn's classic example
  CHECK(m.brier == Approx((0.01 + 0.16 + 0.4225 + 0.04) / 4));
  CHECK(m.sensitivity == Approx(0.5));
  CHECK(m.specificity == Approx(1.0));
  CHECK(m.ppv == Approx(1.0));
  CHECK(m.npv == Approx(2.0 / 3.0));
  // each p is alone in its bin: ECE = mean |p - y|, MCE = max |p - y|
  CHECK(m.ece_positive == Approx((0.1 + 0.4 + 0.65 + 0.2) / 4));
  CHECK(m.mce == Approx(0.65));
  CHECK(m.bins.size() == 15);
  CHECK(std::isnan(compute_metrics({0.2, 0.3}, {0, 0}).auc));
  CHECK(std::isnan(compute_metrics({0.2, 0.3}, {0, 0}).sensitivity));
  CHECK(error_code_of([] { compute_metrics({0.2, 1.3}, {0, 0}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { compute_metrics({}, {}); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("bootstrap intervals are reproducible and contain the point estimate", "[calibration][metrics]") {
  std::vector<double> s, p;
  std::vector<int> y;
  synthetic(500, s, y);
  for (double v : s) p.push_back(sigmoid(v / 3.0));
  const auto a = bootstrap_intervals(p, y, 0.5, 200, 42), b = bootstrap_intervals(p, y, 0.5, 200, 42);
  const Metrics m = compute_metrics(p, y);
  REQUIRE(a.count("auc"));
  CHECK(a.at("auc").low == b.at("auc").low);
  CHECK(a.at("auc").low <= m.auc);
  CHECK(m.auc <= a.at("auc").high);
  CHECK(a.at("brier").low <= m.brier);
  CHECK(m.brier <= a.at("brier").high);
}

TEST_CASE("write_reliability_png writes a PNG, and reports an unwritable path", "[calibration]") {
  test::TempDir dir;
  std::vector<double> s, p, q;
  std::vector<int> y;
  synthetic(1000, s, y);
  const Calibrator t = Calibrator::fit(Method::kTemperature, s, y);
  for (double v : s) p.push_back(sigmoid(v)), q.push_back(t.apply(v));
  write_reliability_png((dir / "r.png").string(), compute_metrics(p, y), compute_metrics(q, y), "test");
  const std::string png = test::read_text(dir / "r.png");
  REQUIRE(png.size() > 1000);
  CHECK(png.substr(1, 3) == "PNG");
  CHECK(error_code_of([&] {
          write_reliability_png((dir / "no" / "r.png").string(), compute_metrics(p, y), Metrics{}, "x");
        }) == ErrorCode::kIo);
}
