// The one serialiser of a Result: what the CLI prints, Python returns and the hosts serve.
#include <medinfer/pipeline.hpp>

#include <nlohmann/json.hpp>

namespace medinfer {

std::string to_json(const Result& r) {
  using Json = nlohmann::ordered_json;
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
  j["latency_ms"] = r.latency_ms;
  // Invalid UTF-8 (a label from a foreign manifest) is replaced, never thrown: a result always prints.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace medinfer
