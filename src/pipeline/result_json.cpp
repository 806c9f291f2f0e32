// The one serialiser of a Result: what the CLI prints, Python returns and the hosts serve.
#include <medinfer/pipeline.hpp>

#include <nlohmann/json.hpp>

namespace medinfer {
namespace {

using Json = nlohmann::ordered_json;

Json result_object(const Result& r) {
  Json j;
  j["probability"] = r.probability;
  j["raw_score"] = r.raw_score;
  j["confidence"] = r.confidence;
  j["tier"] = r.tier;
  j["escalate"] = r.escalate;
  j["indeterminate"] = r.indeterminate;
  if (r.indeterminate) j["reason"] = r.reason;
  j["rule"] = to_string(r.rule);
  if (!r.operating_point.empty()) {
    j["operating_point"] = {{"name", r.operating_point}, {"positive", r.operating_point_positive}};
  }
  if (!r.prediction_set.empty() || r.rule == Rule::kConformalSet) j["prediction_set"] = r.prediction_set;
  j["label"] = r.label;
  Json findings = Json::array();
  for (const Finding& f : r.findings) {
    Json one = {{"label", f.label},           {"probability", f.probability}, {"raw_score", f.raw_score},
                {"confidence", f.confidence}, {"tier", f.tier},               {"escalate", f.escalate},
                {"indeterminate", f.indeterminate}, {"rule", to_string(f.rule)}};
    if (f.indeterminate) one["reason"] = f.reason;
    findings.push_back(std::move(one));
  }
  j["findings"] = std::move(findings);
  j["model"] = {{"name", r.model.name}, {"version", r.model.version}, {"sha256", r.model.sha256}};
  if (r.arm != Arm::kNone) j["arm"] = to_string(r.arm);
  j["input_sha256"] = r.input_sha256;
  j["study_instance_uid"] = r.study_instance_uid;
  j["series_instance_uid"] = r.series_instance_uid;
  j["sop_instance_uid"] = r.sop_instance_uid;
  j["latency_ms"] = r.latency_ms;
  return j;
}

Json series_object(const SeriesResult& r) {
  Json j = result_object(r);
  j["modality"] = r.modality;
  j["aggregation"] = r.aggregation;
  j["slices"] = r.slices;
  j["failed_slices"] = r.failed_slices;
  Json evidence = Json::array();
  for (const auto& e : r.evidence) {
    evidence.push_back({{"label", e.label},
                        {"slice_index", e.slice_index},
                        {"sop_instance_uid", e.sop_instance_uid},
                        {"probability", e.probability}});
  }
  j["evidence"] = std::move(evidence);
  Json warnings = Json::array();
  for (const auto& w : r.warnings) warnings.push_back({{"kind", dicom::to_string(w.kind)}, {"message", w.message}});
  j["warnings"] = std::move(warnings);
  return j;
}

Json series_id(const SkippedSeries& s) {
  return {{"series_instance_uid", s.series_instance_uid},
          {"modality", s.modality},
          {"series_description", s.series_description}};
}

// Invalid UTF-8 (a label from a foreign manifest, a series description) is replaced, never thrown: a
// result always prints.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::string to_json(const Result& r) { return dump(result_object(r)); }

std::string to_json(const SeriesResult& r) { return dump(series_object(r)); }

std::string to_json(const StudyResult& r) {
  Json j;
  j["study_instance_uid"] = r.study_instance_uid;
  Json series = Json::array();
  for (const auto& s : r.series) series.push_back(series_object(s));
  j["series"] = std::move(series);
  Json skipped = Json::array();
  for (const auto& s : r.skipped) {
    Json one = series_id(s);
    one["reason"] = s.reason;
    skipped.push_back(std::move(one));
  }
  j["skipped"] = std::move(skipped);
  Json failed = Json::array();
  for (const auto& [s, e] : r.failed) {
    Json one = series_id(s);
    one["error"] = {{"code", to_string(e.code())}, {"message", e.what()}};
    failed.push_back(std::move(one));
  }
  j["failed"] = std::move(failed);
  Json files = Json::array();
  for (const auto& f : r.skipped_files) files.push_back({{"path", f.path}, {"code", to_string(f.code)}, {"reason", f.reason}});
  j["skipped_files"] = std::move(files);
  j["latency_ms"] = r.latency_ms;
  return dump(j);
}

}  // namespace medinfer
