#include <medinfer/error.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/model_identity.hpp>

#include <string_view>

namespace medinfer {
namespace {
constexpr Rule kRules[] = {Rule::kTierCutpoints,        Rule::kConfidenceThreshold,    Rule::kConformalSet,
                           Rule::kQualityGateModality,  Rule::kQualityGateBodyPart,     Rule::kQualityGatePhotometric,
                           Rule::kQualityGatePixelSpacing, Rule::kQualityGateRows,     Rule::kQualityGateColumns,
                           Rule::kInputConstant};
}  // namespace

const char* to_string(Rule rule) noexcept {
  switch (rule) {
    case Rule::kTierCutpoints: return "tier_cutpoints";
    case Rule::kConfidenceThreshold: return "confidence_threshold";
    case Rule::kConformalSet: return "conformal_set";
    case Rule::kQualityGateModality: return "quality_gate.modality";
    case Rule::kQualityGateBodyPart: return "quality_gate.body_part";
    case Rule::kQualityGatePhotometric: return "quality_gate.photometric";
    case Rule::kQualityGatePixelSpacing: return "quality_gate.pixel_spacing_mm";
    case Rule::kQualityGateRows: return "quality_gate.rows";
    case Rule::kQualityGateColumns: return "quality_gate.columns";
    case Rule::kInputConstant: return "input_constant";
  }
  return "unknown";
}

Rule parse_rule(const std::string& name) {
  std::string names;
  for (Rule r : kRules) {
    if (name == to_string(r)) return r;
    names += (names.empty() ? "" : ", ") + std::string(to_string(r));
  }
  throw Error(ErrorCode::kInvalidArgument, "rule '" + name + "' is not one of " + names);
}

ErrorCode parse_error_code(const std::string& name) {
  // Every enumerator, up to the first value to_string does not know (the codes are dense from 1).
  for (int v = 1; std::string_view(to_string(static_cast<ErrorCode>(v))) != "kUnknown"; ++v) {
    if (name == to_string(static_cast<ErrorCode>(v))) return static_cast<ErrorCode>(v);
  }
  throw Error(ErrorCode::kInvalidArgument, "error code '" + name + "' is not a medinfer ErrorCode name");
}

const char* to_string(Arm arm) noexcept {
  switch (arm) {
    case Arm::kNone: return "";
    case Arm::kPrimary: return "primary";
    case Arm::kCandidate: return "candidate";
  }
  return "";
}

Arm parse_arm(const std::string& name) {
  for (Arm a : {Arm::kNone, Arm::kPrimary, Arm::kCandidate}) {
    if (name == to_string(a)) return a;
  }
  throw Error(ErrorCode::kInvalidArgument, "arm '" + name + "' is not primary, candidate or empty");
}

}  // namespace medinfer
