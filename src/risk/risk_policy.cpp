#include <medinfer/error.hpp>

#include "risk/risk_internal.hpp"
#include "risk/risk_json.hpp"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <tuple>
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
  const QualityGate& g = quality_gate;
  if (!(g.min_pixel_spacing_mm >= 0.0) || !(g.max_pixel_spacing_mm >= 0.0) ||
      (g.max_pixel_spacing_mm > 0.0 && g.max_pixel_spacing_mm < g.min_pixel_spacing_mm)) {
    invalid("quality_gate.pixel_spacing_mm", "must be [min, max] with 0 <= min <= max");
  }
  if (g.max_rows > 0 && g.max_rows < g.min_rows) invalid("quality_gate.rows", "must be [min, max] with min <= max");
  if (g.max_columns > 0 && g.max_columns < g.min_columns) invalid("quality_gate.columns", "must be [min, max] with min <= max");
  if (operating_point) {
    if (operating_point->name.empty()) invalid("operating_point.name", "must not be empty");
    if (!(operating_point->threshold >= 0.0 && operating_point->threshold <= 1.0)) {
      invalid("operating_point.threshold", "must be in [0, 1]");
    }
  }
  if (conformal) {
    if (!(conformal->alpha > 0.0 && conformal->alpha < 1.0)) invalid("conformal.alpha", "must be in (0, 1)");
    if (!(conformal->qhat >= 0.0 && conformal->qhat <= 1.0)) invalid("conformal.qhat", "must be in [0, 1]");
  }
}

detail::GateResult detail::check_quality(const QualityGate& g, const InputFacts& f) {
  auto listed = [](const std::vector<std::string>& allowed, const std::string& v) {
    return allowed.empty() || v.empty() || std::find(allowed.begin(), allowed.end(), v) != allowed.end();
  };
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!listed(g.modalities, f.modality)) {
    return {Rule::kQualityGateModality, "modality " + f.modality + " is not one of " + join(g.modalities)};
  }
  if (!listed(g.body_parts, f.body_part)) {
    return {Rule::kQualityGateBodyPart, "body part '" + f.body_part + "' is not one of " + join(g.body_parts)};
  }
  if (!listed(g.photometric, f.photometric)) {
    return {Rule::kQualityGatePhotometric, "photometric interpretation " + f.photometric + " is not one of " +
                                            join(g.photometric)};
  }
  if ((g.min_pixel_spacing_mm > 0.0 || g.max_pixel_spacing_mm > 0.0) && !f.spacing_known) {
    return {Rule::kQualityGatePixelSpacing, "the image has no valid pixel spacing; the quality gate requires one in [" +
                                                two_decimals(g.min_pixel_spacing_mm) + ", " +
                                                two_decimals(g.max_pixel_spacing_mm) + "] mm"};
  }
  for (double s : {f.spacing_x_mm, f.spacing_y_mm}) {
    if ((g.min_pixel_spacing_mm > 0.0 && s < g.min_pixel_spacing_mm) ||
        (g.max_pixel_spacing_mm > 0.0 && s > g.max_pixel_spacing_mm)) {
      return {Rule::kQualityGatePixelSpacing,
              "pixel spacing " + two_decimals(s) + " mm is outside [" + two_decimals(g.min_pixel_spacing_mm) + ", " +
                  two_decimals(g.max_pixel_spacing_mm) + "]"};
    }
  }
  if (f.rows < g.min_rows || (g.max_rows > 0 && f.rows > g.max_rows)) {
    return {Rule::kQualityGateRows, std::to_string(f.rows) + " rows is outside [" + std::to_string(g.min_rows) + ", " +
                                     std::to_string(g.max_rows) + "]"};
  }
  if (f.columns < g.min_columns || (g.max_columns > 0 && f.columns > g.max_columns)) {
    return {Rule::kQualityGateColumns, std::to_string(f.columns) + " columns is outside [" +
                                        std::to_string(g.min_columns) + ", " + std::to_string(g.max_columns) + "]"};
  }
  return {};
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
  s.rule = Rule::kTierCutpoints;
  s.escalate = probability >= policy.escalation_threshold;
  if (policy.operating_point) s.operating_point_positive = probability >= policy.operating_point->threshold;
  if (policy.conformal) {
    if (1.0 - probability <= policy.conformal->qhat) s.prediction_set.push_back("positive");
    if (probability <= policy.conformal->qhat) s.prediction_set.push_back("negative");
    if (s.prediction_set.size() != 1) {
      s = detail::mark_indeterminate(std::move(s), Rule::kConformalSet,
                             std::string("the ") + two_decimals(100.0 * (1.0 - policy.conformal->alpha)) +
                                 " % conformal prediction set is " +
                                 (s.prediction_set.empty() ? "empty" : "{positive, negative}"));
    }
  }
  if (s.confidence < policy.min_confidence) {
    s = detail::mark_indeterminate(std::move(s), Rule::kConfidenceThreshold,
                           "confidence " + two_decimals(s.confidence) + " is below the policy's minimum " +
                               two_decimals(policy.min_confidence));
  }
  return s;
}

Score detail::mark_indeterminate(Score score, Rule rule, const std::string& reason) {
  if (!score.indeterminate) score.rule = rule;  // the first rule to decide is the one reported
  score.indeterminate = true;
  score.tier = "indeterminate";
  score.reason = score.reason.empty() ? reason : score.reason + "; " + reason;
  return score;
}

Score assess(const Policy& policy, double probability, const InputFacts& facts) {
  Score score = assess(policy, probability);
  std::vector<std::pair<Rule, std::string>> rules;  // input rules, in the order they decide
  const detail::GateResult gate = detail::check_quality(policy.quality_gate, facts);
  if (gate.rule) rules.emplace_back(*gate.rule, gate.reason);
  if (facts.constant) rules.emplace_back(Rule::kInputConstant, "the model input is constant after preprocessing (no contrast)");
  if (rules.empty()) return score;
  const Score model_verdict = score;
  score.indeterminate = false;
  score.reason.clear();
  for (const auto& [rule, reason] : rules) score = detail::mark_indeterminate(std::move(score), rule, reason);
  if (model_verdict.indeterminate) {
    score = detail::mark_indeterminate(std::move(score), model_verdict.rule, model_verdict.reason);
  }
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
  reject_unknown_fields(
      obj, {"tiers", "escalation_threshold", "min_confidence", "quality_gate", "operating_point", "conformal"}, where);
  if (obj.contains("quality_gate")) {
    const Json& g = obj["quality_gate"];
    const std::string at = field_path(where, "quality_gate");
    require_object(g, at);
    auto strings = [&](const char* key) {
      std::vector<std::string> out;
      if (!g.contains(key)) return out;
      const Json& a = g[key];
      if (!a.is_array()) throw Error(ErrorCode::kInvalidArgument, field_path(at, key) + ": expected an array of strings");
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!a[i].is_string()) {
          throw Error(ErrorCode::kInvalidArgument, field_path(at, key) + "[" + std::to_string(i) + "]: expected a string");
        }
        out.push_back(a[i].get<std::string>());
      }
      return out;
    };
    // [min, max] in whole pixels; absent means no bound.
    auto size_range = [&](const char* key, std::uint32_t& lo, std::uint32_t& hi) {
      if (!g.contains(key)) return;
      const auto [a, b] = get_number_pair(g, key, at, "[min, max]");
      if (a < 0 || b < 0 || b > 1e6) throw Error(ErrorCode::kInvalidArgument, field_path(at, key) + ": out of range");
      lo = static_cast<std::uint32_t>(a);
      hi = static_cast<std::uint32_t>(b);
    };
    reject_unknown_fields(g, {"modalities", "body_parts", "photometric", "pixel_spacing_mm", "rows", "columns"}, at);
    QualityGate& q = p.quality_gate;
    q.modalities = strings("modalities");
    q.body_parts = strings("body_parts");
    q.photometric = strings("photometric");
    if (g.contains("pixel_spacing_mm")) {
      std::tie(q.min_pixel_spacing_mm, q.max_pixel_spacing_mm) = get_number_pair(g, "pixel_spacing_mm", at, "[min, max]");
    }
    size_range("rows", q.min_rows, q.max_rows);
    size_range("columns", q.min_columns, q.max_columns);
  }
  if (obj.contains("operating_point")) {
    const Json& o = obj["operating_point"];
    const std::string at = field_path(where, "operating_point");
    OperatingPointRule op;
    op.name = get_string(o, "name", at);
    op.threshold = get_number(o, "threshold", at);
    if (o.contains("guarantee")) op.guarantee = get_string(o, "guarantee", at);
    p.operating_point = op;
  }
  if (obj.contains("conformal")) {
    const Json& c = obj["conformal"];
    const std::string at = field_path(where, "conformal");
    p.conformal = ConformalRule{get_number(c, "alpha", at), get_number(c, "qhat", at)};
  }
  try {
    p.validate();
  } catch (const Error& e) {
    rethrow_with_location(e, where, "risk");
  }
  return p;
}

std::vector<Policy> policies_from_json(const medinfer::detail::Json& value, const std::string& where,
                                       std::size_t label_count) {
  if (!value.is_array()) return std::vector<Policy>(label_count, policy_from_json(value, where));
  if (value.size() != label_count) {
    throw Error(ErrorCode::kInvalidArgument, where + ": " + std::to_string(value.size()) + " policies for " +
                                                 std::to_string(label_count) +
                                                 " label(s): give one object for all, or one per label");
  }
  std::vector<Policy> out;
  for (std::size_t i = 0; i < value.size(); ++i) out.push_back(policy_from_json(value[i], where + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace detail

Policy parse_policy(const std::string& json_text) {
  return medinfer::detail::guarded_parse("risk", [&] {
    return detail::policy_from_json(medinfer::detail::parse_json(json_text, "risk"), "risk");
  });
}

}  // namespace medinfer::risk
