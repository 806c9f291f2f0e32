// Risk policy: tiers, escalation and abstention, declared in the model package.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/finding.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace medinfer::risk {

/// A tier applies from `min_probability` (inclusive) up to the next tier's.
struct Tier {
  std::string name;
  double min_probability = 0.0;
};

/// Inputs the model was not validated for are abstained on ("indeterminate", rule
/// Rule::kQualityGate<Field>), never scored as if they were. Empty lists and zero bounds mean "any".
struct QualityGate {
  std::vector<std::string> modalities;         ///< e.g. {"CT"}
  std::vector<std::string> body_parts;         ///< BodyPartExamined values, e.g. {"CHEST"}
  std::vector<std::string> photometric;        ///< e.g. {"MONOCHROME2"}
  double min_pixel_spacing_mm = 0.0, max_pixel_spacing_mm = 0.0;
  std::uint32_t min_rows = 0, max_rows = 0, min_columns = 0, max_columns = 0;
};

/// What the quality gate looks at. Empty strings mean unknown (an in-memory image): the gates on
/// modality, body part and photometric interpretation then do not apply.
struct InputFacts {
  std::string modality, body_part, photometric;
  double spacing_x_mm = 0.0, spacing_y_mm = 0.0;
  std::uint32_t rows = 0, columns = 0;
  /// The model's input is constant (every value within 1e-6) after preprocessing: a blank or saturated
  /// frame, or one the window flattened. Rule "input_constant".
  bool constant = false;
  /// False when the image has no valid pixel spacing (absent, or a header warning such as PixelSpacing
  /// 0\0): a gate on pixel_spacing_mm then refuses it (rule "quality_gate.pixel_spacing_mm").
  bool spacing_known = true;
};

/// A decision threshold derived from a target (see calibration::sensitivity_operating_point).
struct OperatingPointRule {
  std::string name;        ///< e.g. "sensitivity_0.90"
  double threshold = 0.5;  ///< on the calibrated probability
  std::string guarantee;   ///< what was guaranteed, as text for the reader
};

/// Split-conformal prediction sets (see calibration::conformal_threshold).
struct ConformalRule {
  double alpha = 0.1;
  double qhat = 1.0;
};

struct MEDINFER_API Policy {
  /// Ascending; the first starts at 0. Names non-empty, unique, and not "indeterminate".
  std::vector<Tier> tiers;
  /// A calibrated probability at or above this sets `escalate`.
  double escalation_threshold = 1.0;
  /// Confidence = max(p, 1 - p). Below this the result is indeterminate. In [0.5, 1].
  double min_confidence = 0.5;

  QualityGate quality_gate;
  std::optional<OperatingPointRule> operating_point;
  std::optional<ConformalRule> conformal;

  /// Throws Error(kInvalidArgument) naming the field of the first invalid value.
  void validate() const;
};

/// What the policy says about one calibrated probability: a Finding (label and raw_score are the
/// caller's to fill; the pipeline does).
using Score = Finding;

/// Applies `policy` (assumed valid) to `probability`. Throws Error(kInvalidArgument) for a probability
/// outside [0, 1] or NaN. Thread-safe.
MEDINFER_API Score assess(const Policy& policy, double probability);

/// The verdict on one input, in the one order the library uses everywhere: the policy's quality gate
/// first (rule "quality_gate.<field>"), then a constant input ("input_constant"), then the model's own
/// verdict under the policy (conformal set, confidence threshold, tier cut-points). An input outside the
/// gate is never scored as if it were in: it is "indeterminate" with the first rule that decided; the
/// reasons of every rule that applied are joined with "; ", and `escalate` keeps the probability's
/// verdict (a high probability on a doubtful input still reaches a person). Throws as assess().
MEDINFER_API Score assess(const Policy& policy, double probability, const InputFacts& facts);

/// Parses the manifest's "risk" object: {"tiers": [{"name", "min_probability"}...],
/// "escalation_threshold", "min_confidence", optional "quality_gate", "operating_point",
/// "conformal"} and validates it.
MEDINFER_API Policy parse_policy(const std::string& json_text);

}  // namespace medinfer::risk
