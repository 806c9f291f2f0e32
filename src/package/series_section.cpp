#include "package/series_section.hpp"

#include <medinfer/error.hpp>

#include "calibration/calibration_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace medinfer::package::detail {

using medinfer::detail::Json;

const char* to_string(Aggregation a) noexcept {
  switch (a) {
    case Aggregation::kMax: return "max";
    case Aggregation::kMean: return "mean";
    case Aggregation::kNoisyOr: return "noisy_or";
    case Aggregation::kTopKMean: return "top_k_mean";
  }
  return "max";
}

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, where + ": " + message);
}

std::vector<std::string> string_list(const Json& obj, const char* key, const std::string& where) {
  std::vector<std::string> out;
  if (!obj.contains(key)) return out;
  const Json& v = obj.at(key);
  const std::string at = medinfer::detail::field_path(where, key);
  if (!v.is_array() || v.empty()) fail(at, "expected a non-empty array of strings");
  for (const Json& e : v) {
    if (!e.is_string() || e.get<std::string>().empty()) fail(at, "expected a non-empty array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

SeriesSection series_from_json(const Json* value, const std::string& where, Task task, std::size_t label_count) {
  SeriesSection s;
  if (value == nullptr) return s;
  medinfer::detail::require_object(*value, where);
  medinfer::detail::reject_unknown_fields(*value, {"aggregation", "k", "evidence_slices", "calibrate", "calibration"},
                                          where);
  if (task == Task::kMultiClass) {
    fail(where, "series aggregation applies to binary and multi-label packages, not multi-class");
  }
  s.declared = true;
  if (value->contains("aggregation")) {
    const std::string name = medinfer::detail::get_string(*value, "aggregation", where);
    bool found = false;
    for (Aggregation a : {Aggregation::kMax, Aggregation::kMean, Aggregation::kNoisyOr, Aggregation::kTopKMean}) {
      if (name == to_string(a)) s.aggregation = a, found = true;
    }
    if (!found) fail(where + ".aggregation", "'" + name + "' is not max, mean, noisy_or or top_k_mean");
  }
  if (value->contains("k")) {
    if (s.aggregation != Aggregation::kTopKMean) fail(where + ".k", "only top_k_mean takes k");
    const std::int64_t k = medinfer::detail::get_integer(*value, "k", where);
    if (k < 1 || k > 4096) fail(where + ".k", "expected an integer in 1..4096");
    s.k = static_cast<std::size_t>(k);
  } else if (s.aggregation == Aggregation::kTopKMean) {
    fail(where + ".k", "top_k_mean needs k");
  }
  if (value->contains("evidence_slices")) {
    const std::int64_t e = medinfer::detail::get_integer(*value, "evidence_slices", where);
    if (e < 0 || e > 64) fail(where + ".evidence_slices", "expected an integer in 0..64");
    s.evidence_slices = static_cast<std::size_t>(e);
  }
  const std::string mode = value->contains("calibrate") ? medinfer::detail::get_string(*value, "calibrate", where)
                                                        : std::string("per_slice");
  if (mode != "per_slice" && mode != "aggregate") {
    fail(where + ".calibrate", "'" + mode + "' is not per_slice or aggregate");
  }
  s.calibrate_aggregate = mode == "aggregate";
  if (s.calibrate_aggregate) {
    if (!value->contains("calibration")) fail(where + ".calibration", "\"calibrate\": \"aggregate\" needs the series' own calibration");
    s.calibrators = calibration::detail::calibration_from_json(value->at("calibration"), where + ".calibration", task,
                                                               label_count);
  } else if (value->contains("calibration")) {
    fail(where + ".calibration", "only \"calibrate\": \"aggregate\" takes a series calibration");
  }
  return s;
}

double aggregate(const SeriesSection& s, std::vector<double> values, bool logits) {
  switch (s.aggregation) {
    case Aggregation::kMax:
      return *std::max_element(values.begin(), values.end());
    case Aggregation::kMean:
      return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    case Aggregation::kTopKMean: {
      const std::size_t k = std::min(s.k, values.size());
      std::partial_sort(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end(), std::greater<>());
      return std::accumulate(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), 0.0) / static_cast<double>(k);
    }
    case Aggregation::kNoisyOr: {
      // 1 - prod(1 - p), summed in log space (log1p) so hundreds of slices lose nothing.
      double log_none = 0.0;
      for (double v : values) log_none += std::log1p(-std::min(logits ? sigmoid(v) : v, 1.0 - 1e-15));
      const double p = -std::expm1(log_none);
      if (!logits) return p;
      const double clamped = std::clamp(p, 1e-15, 1.0 - 1e-15);
      return std::log(clamped / (1.0 - clamped));
    }
  }
  return values.front();
}

SeriesSelection selection_from_json(const Json* value, const std::string& where) {
  SeriesSelection sel;
  if (value == nullptr) return sel;
  medinfer::detail::require_object(*value, where);
  medinfer::detail::reject_unknown_fields(*value, {"any_of"}, where);
  const Json& rules = medinfer::detail::require_member(*value, "any_of", where);
  if (!rules.is_array() || rules.empty()) fail(where + ".any_of", "expected a non-empty array of rules");
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const std::string at = fmt::format("{}.any_of[{}]", where, i);
    const Json& r = rules[i];
    medinfer::detail::require_object(r, at);
    medinfer::detail::reject_unknown_fields(
        r, {"modality", "body_part", "orientation", "image_type", "slice_thickness_mm", "slices"}, at);
    SelectionRule rule;
    rule.modalities = string_list(r, "modality", at);
    rule.body_parts = string_list(r, "body_part", at);
    rule.orientations = string_list(r, "orientation", at);
    for (const std::string& o : rule.orientations) {
      if (o != "axial" && o != "coronal" && o != "sagittal" && o != "oblique") {
        fail(at + ".orientation", "'" + o + "' is not axial, coronal, sagittal or oblique");
      }
    }
    rule.image_type = string_list(r, "image_type", at);
    auto range = [&](const char* key) -> std::optional<std::pair<double, double>> {
      if (!r.contains(key)) return std::nullopt;
      const auto p = medinfer::detail::get_number_pair(r, key, at, "[min, max]");
      if (p.first < 0 || p.first > p.second) fail(at + "." + key, "expected [min, max] with 0 <= min <= max");
      return p;
    };
    rule.slice_thickness_mm = range("slice_thickness_mm");
    rule.slices = range("slices");
    if (rule.modalities.empty() && rule.body_parts.empty() && rule.orientations.empty() && rule.image_type.empty() &&
        !rule.slice_thickness_mm && !rule.slices) {
      fail(at, "a rule with no field would select every series: give at least one");
    }
    sel.any_of.push_back(std::move(rule));
  }
  return sel;
}

namespace {

bool contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// Empty when the rule holds, else its first failing field.
std::string rule_mismatch(const SelectionRule& r, const SeriesFacts& f) {
  if (!r.modalities.empty() && !contains(r.modalities, f.modality)) {
    return fmt::format("modality {} is not {}", f.modality.empty() ? "(none)" : f.modality, fmt::join(r.modalities, "/"));
  }
  if (!r.body_parts.empty() && !contains(r.body_parts, f.body_part)) {
    return fmt::format("body part {} is not {}", f.body_part.empty() ? "(none)" : f.body_part, fmt::join(r.body_parts, "/"));
  }
  if (!r.orientations.empty() && !contains(r.orientations, f.orientation)) {
    return fmt::format("orientation {} is not {}", f.orientation, fmt::join(r.orientations, "/"));
  }
  for (const std::string& t : r.image_type) {
    if (!contains(f.image_type, t)) return fmt::format("image type {} lacks {}", fmt::join(f.image_type, "\\"), t);
  }
  if (r.slice_thickness_mm) {
    const auto [lo, hi] = *r.slice_thickness_mm;
    if (!(f.slice_thickness_mm > 0) || f.slice_thickness_mm < lo || f.slice_thickness_mm > hi) {
      return f.slice_thickness_mm > 0 ? fmt::format("slice thickness {} mm is outside [{}, {}]", f.slice_thickness_mm, lo, hi)
                                      : std::string("no slice thickness");
    }
  }
  if (r.slices) {
    const auto [lo, hi] = *r.slices;
    const double n = static_cast<double>(f.slices);
    if (n < lo || n > hi) return fmt::format("{} slices is outside [{}, {}]", f.slices, lo, hi);
  }
  return {};
}

}  // namespace

std::string selection_mismatch(const SeriesSelection& selection, const SeriesFacts& facts) {
  if (facts.slices == 0) return "no image slices (only localizers)";
  std::string why;
  for (std::size_t i = 0; i < selection.any_of.size(); ++i) {
    const std::string m = rule_mismatch(selection.any_of[i], facts);
    if (m.empty()) return {};
    why += fmt::format("{}rule {}: {}", why.empty() ? "" : "; ", i, m);
  }
  return why;
}

std::string orientation_name(const std::array<double, 6>& o) {
  const double n[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
  const double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
  if (!(len > 0)) return "oblique";
  const double cos30 = std::sqrt(3.0) / 2.0;
  if (std::fabs(n[2]) / len >= cos30) return "axial";
  if (std::fabs(n[1]) / len >= cos30) return "coronal";
  if (std::fabs(n[0]) / len >= cos30) return "sagittal";
  return "oblique";
}

}  // namespace medinfer::package::detail
