#include <medinfer/error.hpp>

#include "risk/risk_json.hpp"

#include <cmath>
#include <cstdio>
#include <set>

namespace medinfer::risk {
namespace {

[[noreturn]] void invalid(const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "risk." + field + ": " + what);
}

std::string two_decimals(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

void Policy::validate() const {
  if (tiers.empty()) invalid("tiers", "at least one tier is required");
  std::set<std::string> names;
  for (std::size_t i = 0; i < tiers.size(); ++i) {
    const std::string at = "tiers[" + std::to_string(i) + "]";
    const Tier& t = tiers[i];
    if (t.name.empty()) invalid(at + ".name", "must not be empty");
    if (t.name == "indeterminate") invalid(at + ".name", "'indeterminate' is reserved");
    if (!names.insert(t.name).second) invalid(at + ".name", "'" + t.name + "' appears twice");
    if (!(t.min_probability >= 0.0 && t.min_probability <= 1.0)) invalid(at + ".min_probability", "must be in [0, 1]");
    if (i == 0 && t.min_probability != 0.0) invalid(at + ".min_probability", "the first tier must start at 0");
    if (i > 0 && !(t.min_probability > tiers[i - 1].min_probability)) {
      invalid(at + ".min_probability", "tiers must be in strictly increasing order");
    }
  }
  if (!(escalation_threshold >= 0.0 && escalation_threshold <= 1.0)) {
    invalid("escalation_threshold", "must be in [0, 1]");
  }
  if (!(min_confidence >= 0.5 && min_confidence <= 1.0)) invalid("min_confidence", "must be in [0.5, 1]");
}

Score assess(const Policy& policy, double probability) {
  if (!(probability >= 0.0 && probability <= 1.0)) {
    throw Error(ErrorCode::kInvalidArgument, "risk: probability " + std::to_string(probability) + " is not in [0, 1]");
  }
  Score s;
  s.probability = probability;
  s.confidence = std::max(probability, 1.0 - probability);
  for (const Tier& t : policy.tiers) {
    if (probability >= t.min_probability) s.tier = t.name;
  }
  s.escalate = probability >= policy.escalation_threshold;
  if (s.confidence < policy.min_confidence) {
    s = mark_indeterminate(std::move(s), "confidence " + two_decimals(s.confidence) + " is below the policy's minimum " +
                                             two_decimals(policy.min_confidence));
  }
  return s;
}

Score mark_indeterminate(Score score, const std::string& reason) {
  score.indeterminate = true;
  score.tier = "indeterminate";
  score.reason = score.reason.empty() ? reason : score.reason + "; " + reason;
  return score;
}

namespace detail {

Policy policy_from_json(const medinfer::detail::Json& obj, const std::string& where) {
  using namespace medinfer::detail;
  Policy p;
  const Json& tiers = require_member(obj, "tiers", where);
  if (!tiers.is_array()) throw Error(ErrorCode::kInvalidArgument, field_path(where, "tiers") + ": expected an array");
  for (std::size_t i = 0; i < tiers.size(); ++i) {
    const std::string at = field_path(where, "tiers") + "[" + std::to_string(i) + "]";
    p.tiers.push_back(Tier{get_string(tiers[i], "name", at), get_number(tiers[i], "min_probability", at)});
  }
  p.escalation_threshold = get_number(obj, "escalation_threshold", where);
  p.min_confidence = get_number(obj, "min_confidence", where);
  try {
    p.validate();
  } catch (const Error& e) {
    rethrow_with_location(e, where, "risk");
  }
  return p;
}

}  // namespace detail

Policy parse_policy(const std::string& json_text) {
  return detail::policy_from_json(medinfer::detail::parse_json(json_text, "risk"), "risk");
}

}  // namespace medinfer::risk
