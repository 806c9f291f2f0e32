// Calibration: turning a model's raw score (logit) into a probability that means what it says.
#pragma once

#include <medinfer/export.hpp>

#include <string>

namespace medinfer::calibration {

/// Temperature scaling (Guo et al. 2017): p = sigmoid(logit / T). A value type; thread-safe.
class MEDINFER_API TemperatureScaling {
 public:
  /// Throws Error(kInvalidArgument) unless `temperature` is finite and > 0.
  explicit TemperatureScaling(double temperature);
  double temperature() const noexcept { return temperature_; }
  /// The calibrated probability in [0, 1]; numerically stable for large |logit|. Throws
  /// Error(kInvalidArgument) for a non-finite logit.
  double apply(double logit) const;

 private:
  double temperature_;
};

/// Parses the manifest's "calibration" object: {"method": "temperature", "temperature": T}.
/// Throws Error(kInvalidArgument) naming the field.
MEDINFER_API TemperatureScaling parse_calibration(const std::string& json_text);

}  // namespace medinfer::calibration
