// Internal: the manifest's "preprocessing" array -> Spec, for the pipeline (which holds parsed JSON).
#pragma once

#include <medinfer/preprocess.hpp>

#include "core/json_util.hpp"

namespace medinfer::preprocess::detail {

/// `where` names the array, e.g. "manifest.json: preprocessing".
Spec spec_from_json(const medinfer::detail::Json& steps, const std::string& where);

}  // namespace medinfer::preprocess::detail
