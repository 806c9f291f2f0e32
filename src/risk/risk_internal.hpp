// Internal: the pieces risk::assess(policy, p, facts) is made of, for the module and its internal tests.
#pragma once

#include <medinfer/risk.hpp>

#include <optional>
#include <string>

namespace medinfer::risk::detail {

/// No rule when `facts` pass `gate`; otherwise the failing rule and the reason, as
/// {Rule::kQualityGateModality, "modality MR is not one of CT"}.
struct GateResult {
  std::optional<Rule> rule;
  std::string reason;
};
GateResult check_quality(const QualityGate& gate, const InputFacts& facts);

/// The same score, marked indeterminate by `rule` for `reason` (an input quality check): the tier
/// becomes "indeterminate", `escalate` is kept; the first rule to decide is the one reported.
Score mark_indeterminate(Score score, Rule rule, const std::string& reason);

}  // namespace medinfer::risk::detail
