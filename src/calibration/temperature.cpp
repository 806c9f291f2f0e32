#include <medinfer/error.hpp>

#include "calibration/calibration_json.hpp"

#include <cmath>

namespace medinfer::calibration {

TemperatureScaling::TemperatureScaling(double temperature) : temperature_(temperature) {
  if (!std::isfinite(temperature) || temperature <= 0.0) {
    throw Error(ErrorCode::kInvalidArgument,
                "calibration.temperature: must be finite and > 0 (got " + std::to_string(temperature) + ")");
  }
}

double TemperatureScaling::apply(double logit) const {
  if (!std::isfinite(logit)) {
    throw Error(ErrorCode::kInvalidArgument, "calibration: the logit is not finite");
  }
  const double z = logit / temperature_;
  // Stable sigmoid: never exponentiate a large positive number.
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

namespace detail {

TemperatureScaling calibration_from_json(const medinfer::detail::Json& obj, const std::string& where) {
  const std::string method = medinfer::detail::get_string(obj, "method", where);
  if (method != "temperature") {
    throw Error(ErrorCode::kInvalidArgument,
                medinfer::detail::field_path(where, "method") + ": '" + method + "' is not supported (temperature)");
  }
  const double t = medinfer::detail::get_number(obj, "temperature", where);
  if (t <= 0.0) {
    throw Error(ErrorCode::kInvalidArgument, medinfer::detail::field_path(where, "temperature") + ": must be > 0");
  }
  return TemperatureScaling(t);
}

}  // namespace detail

TemperatureScaling parse_calibration(const std::string& json_text) {
  return detail::calibration_from_json(medinfer::detail::parse_json(json_text, "calibration"), "calibration");
}

}  // namespace medinfer::calibration
