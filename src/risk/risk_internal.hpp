// Internal: the pieces risk::assess(policy, p, facts) is made of, for the module and its internal tests.
#pragma once

#include <medinfer/risk.hpp>

#include <string>

namespace medinfer::risk::detail {

/// "" when `facts` pass `gate`; otherwise the failing rule and the reason, as
/// {"quality_gate.modality", "modality MR is not one of CT"}.
struct GateResult {
  std::string rule, reason;
};
GateResult check_quality(const QualityGate& gate, const InputFacts& facts);

/// The same score, marked indeterminate by `rule` for `reason` (an input quality check): the tier
/// becomes "indeterminate", `escalate` is kept; the first rule to decide is the one reported.
Score mark_indeterminate(Score score, const std::string& rule, const std::string& reason);

}  // namespace medinfer::risk::detail
