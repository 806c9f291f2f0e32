// Risk policy: tiers, escalation and abstention, declared in the model package.
#pragma once

#include <medinfer/export.hpp>

#include <string>
#include <vector>

namespace medinfer::risk {

/// A tier applies from `min_probability` (inclusive) up to the next tier's.
struct Tier {
  std::string name;
  double min_probability = 0.0;
};

struct MEDINFER_API Policy {
  /// Ascending; the first starts at 0. Names non-empty, unique, and not "indeterminate".
  std::vector<Tier> tiers;
  /// A calibrated probability at or above this sets `escalate`.
  double escalation_threshold = 1.0;
  /// Confidence = max(p, 1 - p). Below this the result is indeterminate. In [0.5, 1].
  double min_confidence = 0.5;

  /// Throws Error(kInvalidArgument) naming the field of the first invalid value.
  void validate() const;
};

/// What the policy says about one calibrated probability. A value type.
struct Score {
  double probability = 0.0;
  double confidence = 0.0;      ///< max(p, 1 - p)
  std::string tier;             ///< a tier name, or "indeterminate"
  bool escalate = false;        ///< probability >= escalation_threshold
  bool indeterminate = false;
  std::string reason;           ///< why indeterminate; empty otherwise
};

/// Applies `policy` (assumed valid) to `probability`. Throws Error(kInvalidArgument) for a probability
/// outside [0, 1] or NaN. Thread-safe.
MEDINFER_API Score assess(const Policy& policy, double probability);

/// The same score, marked indeterminate for a reason found before the model ran (an input quality
/// check): the tier becomes "indeterminate", `escalate` is kept.
MEDINFER_API Score mark_indeterminate(Score score, const std::string& reason);

/// Parses the manifest's "risk" object: {"tiers": [{"name", "min_probability"}...],
/// "escalation_threshold", "min_confidence"} and validates it.
MEDINFER_API Policy parse_policy(const std::string& json_text);

}  // namespace medinfer::risk
