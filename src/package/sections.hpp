// Internal: the one definition of a valid package beyond its integrity — the manifest's preprocessing,
// calibration and risk sections for the package's task and labels, parsed from the manifest as
// ModelPackage::open parsed it. verify_package, package::create/sign/write_recalibrated and
// Pipeline::open all go through load_sections.
#pragma once

#include <medinfer/calibration.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include "package/series_section.hpp"

#include <string>
#include <vector>

namespace medinfer::package::detail {

struct Sections {
  preprocess::Spec spec;
  std::string spec_sha256;  ///< SHA-256 of the preprocessing section's canonical JSON
  /// Binary / multi-label: one per label. Multi-class: one temperature for all logits.
  std::vector<calibration::Calibrator> calibrators;
  std::vector<risk::Policy> policies;  ///< one per label
  SeriesSection series;                ///< "series" (defaults when absent)
  SeriesSelection selection;           ///< "series_selection" (empty: every series)
};

/// Throws Error(kInvalidArgument) naming the field of the first invalid section.
Sections load_sections(const ModelPackage& package);

}  // namespace medinfer::package::detail
