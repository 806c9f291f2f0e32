// Internal: the manifest's "series" section (how a 2D package's slice scores combine into a series
// finding) and "series_selection" (which series of a study a package accepts). The one home of both
// rules: predict_series and predict_study apply them, verify_package checks them.
#pragma once

#include <medinfer/calibration.hpp>
#include <medinfer/model_package.hpp>

#include "core/json_util.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace medinfer::package::detail {

enum class Aggregation { kMax, kMean, kNoisyOr, kTopKMean };
const char* to_string(Aggregation a) noexcept;

struct SeriesSection {
  bool declared = false;  ///< the manifest has a "series" section
  Aggregation aggregation = Aggregation::kMax;
  std::size_t k = 3;                ///< top_k_mean: how many slices
  std::size_t evidence_slices = 3;  ///< per label, 0..64
  /// false ("calibrate": "per_slice", the default): slice probabilities (calibrated by the package's
  /// "calibration") are aggregated. true ("aggregate"): slice logits are aggregated, then calibrated by
  /// the section's own "calibration" (one per label), fitted on series-level labels.
  bool calibrate_aggregate = false;
  std::vector<calibration::Calibrator> calibrators;
};

/// Parses "series" (absent: the defaults, declared = false). Throws Error(kInvalidArgument) naming
/// the field; a multi-class package cannot declare one.
SeriesSection series_from_json(const medinfer::detail::Json* value, const std::string& where, Task task,
                               std::size_t label_count);

/// The series score of one label from its slices' values: probabilities (per_slice) or logits
/// (aggregate; noisy_or then combines sigmoid(z) and returns the logit of the result). Non-empty.
double aggregate(const SeriesSection& s, std::vector<double> values, bool logits);

/// What selection looks at in a series.
struct SeriesFacts {
  std::string modality, body_part, orientation;  ///< orientation: axial, coronal, sagittal or oblique
  std::vector<std::string> image_type;           ///< of its first image that is not a localizer
  double slice_thickness_mm = 0.0;               ///< 0: absent
  std::size_t slices = 0;                        ///< image slices, localizers not counted
};

/// One rule of "series_selection": every field given must hold (AND).
struct SelectionRule {
  std::vector<std::string> modalities, body_parts, orientations, image_type;  ///< image_type: all present
  std::optional<std::pair<double, double>> slice_thickness_mm;
  std::optional<std::pair<double, double>> slices;
};

/// "series_selection": {"any_of": [rules]} (OR of the rules). Absent: every series with slices.
struct SeriesSelection {
  std::vector<SelectionRule> any_of;
};

SeriesSelection selection_from_json(const medinfer::detail::Json* value, const std::string& where);

/// Empty when the series is selected, else why not (naming each rule's first failing field).
std::string selection_mismatch(const SeriesSelection& selection, const SeriesFacts& facts);

/// "axial", "coronal", "sagittal" (the slice normal within 30 degrees of an axis) or "oblique".
std::string orientation_name(const std::array<double, 6>& image_orientation);

}  // namespace medinfer::package::detail
