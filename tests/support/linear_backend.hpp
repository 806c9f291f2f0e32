// A model backend for tests whose logits are known exactly ("test-linear": logit_k = a_k * mean(input)
// + b_k), and packages that use it (the demo's preprocessing). Shared by the deployment and
// many-input tests.
#pragma once

#include <medinfer/engine.hpp>
#include <medinfer/model_package.hpp>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace medinfer::test {

using nlohmann::json;

// Lets a test hold the "test-linear" backend inside run() (to have a call in flight during a swap).
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  int inside = 0;
  bool open = true;
};
inline Gate& gate() {
  static Gate g;
  return g;
}

// logit_k = a_k * mean(input image) + b_k. Model bytes: {"a": [...], "b": [...], "hold": bool}.
class LinearBackend final : public Backend {
 public:
  explicit LinearBackend(const std::string& bytes) {
    const json j = json::parse(bytes);
    a_ = j.at("a").get<std::vector<double>>();
    b_ = j.at("b").get<std::vector<double>>();
    hold_ = j.value("hold", false);
    throw_above_ = j.value("throw_above", 1e300);
    nan_above_ = j.value("nan_above", 1e300);
  }
  Tensor run(const Tensor& input) const override {
    if (hold_) {
      std::unique_lock<std::mutex> lock(gate().mutex);
      ++gate().inside;
      gate().cv.notify_all();
      gate().cv.wait(lock, [] { return gate().open; });
      --gate().inside;
    }
    const std::int64_t n = input.shape[0];
    const std::size_t per = input.element_count() / static_cast<std::size_t>(n);
    Tensor out;
    out.shape = {n, static_cast<std::int64_t>(b_.size())};
    for (std::int64_t i = 0; i < n; ++i) {
      double mean = 0.0;
      for (std::size_t j = 0; j < per; ++j) mean += input.data[static_cast<std::size_t>(i) * per + j];
      mean /= static_cast<double>(per);
      if (mean > throw_above_) throw std::runtime_error("test backend: mean above its limit");
      for (std::size_t k = 0; k < b_.size(); ++k) {
        out.data.push_back(mean > nan_above_ ? std::nanf("") : static_cast<float>(a_[k] * mean + b_[k]));
      }
    }
    return out;
  }
  std::string description() const override { return "test-linear"; }

 private:
  std::vector<double> a_, b_;
  bool hold_ = false;
  double throw_above_ = 1e300;
  double nan_above_ = 1e300;
};

inline void register_linear_backend() {
  register_backend("test-linear", [](const ModelPackage& package, const EngineOptions&) -> std::unique_ptr<Backend> {
    return std::make_unique<LinearBackend>(package.model_bytes());
  });
}

inline const json kRisk = json::parse(R"({"tiers": [{"name": "low", "min_probability": 0.0},
                                             {"name": "high", "min_probability": 0.6}],
                                   "escalation_threshold": 0.7, "min_confidence": 0.5})");

struct PackageSpec {
  std::string version = "1.0.0";
  std::string task = "binary";
  std::vector<std::string> labels = {"lesion"};
  std::vector<double> a = {0.0}, b = {0.0};
  bool hold = false;
  double throw_above = 1e300;
  double nan_above = 1e300;  ///< a mean input above this gives a NaN logit (the engine refuses it)
  json calibration = json{{"method", "temperature"}, {"temperature", 1.0}};
  json risk = kRisk;
  json extra;  ///< more manifest members (e.g. "series", "series_selection")
};

// A package in `dir` (created) from the demo's preprocessing, with a "test-linear" model.
inline fs::path make_package(const fs::path& dir, const PackageSpec& spec) {
  fs::create_directories(dir);
  const fs::path pkg = test::copy_demo_package(dir);
  fs::remove(pkg / "model.pt");
  fs::remove(pkg / "calibration_report.json");
  test::write_text(pkg / "model.json",
                   json{{"a", spec.a}, {"b", spec.b}, {"hold", spec.hold}, {"throw_above", spec.throw_above},
                        {"nan_above", spec.nan_above}}.dump());
  json m = json::parse(test::read_text(pkg / "manifest.json"));
  m["version"] = spec.version;
  m["task"] = spec.task;
  m["labels"] = spec.labels;
  m["output"]["count"] = spec.labels.size();
  m["model"] = {{"file", "model.json"}, {"format", "test-linear"}};
  m["calibration"] = spec.calibration;
  m["risk"] = spec.risk;
  m["files"] = {{"model.json", test::sha256_file(pkg / "model.json")}};
  if (spec.extra.is_object()) m.update(spec.extra);
  test::write_text(pkg / "manifest.json", m.dump(2));
  return pkg;
}

}  // namespace medinfer::test
