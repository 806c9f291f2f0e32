// Finding: what the model, calibration and risk policy say about one label. The one value type for a
// scored label everywhere: risk::assess returns it, Result is the primary one (and holds every label's
// in `findings`), audit records carry them. Enums here; strings only at the JSON edge (to_string).
#pragma once

#include <medinfer/export.hpp>

#include <string>
#include <vector>

namespace medinfer {

/// Which rule decided a finding's tier.
enum class Rule {
  kTierCutpoints,            ///< "tier_cutpoints": the policy's tiers (nothing made it indeterminate)
  kConfidenceThreshold,      ///< "confidence_threshold": max(p, 1 - p) below the policy's minimum
  kConformalSet,             ///< "conformal_set": the conformal prediction set is empty or both classes
  kQualityGateModality,      ///< "quality_gate.modality"
  kQualityGateBodyPart,      ///< "quality_gate.body_part"
  kQualityGatePhotometric,   ///< "quality_gate.photometric"
  kQualityGatePixelSpacing,  ///< "quality_gate.pixel_spacing_mm"
  kQualityGateRows,          ///< "quality_gate.rows"
  kQualityGateColumns,       ///< "quality_gate.columns"
  kInputConstant,            ///< "input_constant": every pixel has the same value
};
/// The rule's name as results and audit records write it ("tier_cutpoints", "quality_gate.rows", ...).
MEDINFER_API const char* to_string(Rule rule) noexcept;
/// The inverse of to_string. Throws Error(kInvalidArgument) naming the accepted names.
MEDINFER_API Rule parse_rule(const std::string& name);

/// What the model, calibration and risk policy say about one label. A value type.
struct Finding {
  std::string label;           ///< the package's label (empty from risk::assess, which sees no label)
  double probability = 0.0;    ///< calibrated p(label present) (multi-class: p(this class)), in [0, 1]
  double raw_score = 0.0;      ///< the model's logit for this label
  double confidence = 0.0;     ///< max(probability, 1 - probability)
  std::string tier;            ///< the tier's name under this label's policy, or "indeterminate"
  bool escalate = false;       ///< probability >= the policy's escalation threshold (kept when indeterminate)
  bool indeterminate = false;
  std::string reason;          ///< why indeterminate (every rule that applied, joined by "; "); else empty
  Rule rule = Rule::kTierCutpoints;  ///< the first rule that decided
  bool operating_point_positive = false;    ///< with an operating point: probability >= its threshold
  std::vector<std::string> prediction_set;  ///< with a conformal rule: subset of {"positive", "negative"}
};

}  // namespace medinfer
