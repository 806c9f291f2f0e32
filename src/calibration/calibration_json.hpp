// Internal: the manifest's "calibration" object -> calibrator.
#pragma once

#include <medinfer/calibration.hpp>

#include "core/json_util.hpp"

namespace medinfer::calibration::detail {
TemperatureScaling calibration_from_json(const medinfer::detail::Json& obj, const std::string& where);
}  // namespace medinfer::calibration::detail
