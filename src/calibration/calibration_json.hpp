// Internal: the manifest's "calibration" value (one object, or one per label) -> calibrators.
#pragma once

#include <medinfer/calibration.hpp>

#include "core/json_util.hpp"

namespace medinfer::calibration::detail {
std::vector<Calibrator> calibration_from_json(const medinfer::detail::Json& value, const std::string& where,
                                              std::size_t label_count);
/// The same for a package's task (check_for_task applied).
std::vector<Calibrator> calibration_from_json(const medinfer::detail::Json& value, const std::string& where, Task task,
                                              std::size_t label_count);
}  // namespace medinfer::calibration::detail
