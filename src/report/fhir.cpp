// A result as a FHIR R4 Bundle: Device, one Observation per finding, a DiagnosticReport grouping them.
// docs/reports.md has the mapping table.
#include <medinfer/build_info.hpp>
#include <medinfer/error.hpp>
#include <medinfer/report.hpp>

#include "core/json_util.hpp"
#include "core/sha256.hpp"
#include "report/report_content.hpp"

#include <fmt/format.h>

#include <map>

namespace medinfer::report {

namespace {

using detail::Code;
using Json = nlohmann::ordered_json;

constexpr const char* kConceptSystem = "urn:medinfer:concepts";
constexpr const char* kTierSystem = "urn:medinfer:risk-tier";
constexpr const char* kInterpretationSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

// A DICOM coding scheme designator as a FHIR system URI (the ones FHIR and DICOM PS3.16 name; any
// other designator keeps its DICOM name under urn:dicom:coding-scheme).
std::string system_of(const std::string& scheme) {
  static const std::map<std::string, std::string> kSystems = {
      {"SCT", "http://snomed.info/sct"},        {"DCM", "http://dicom.nema.org/resources/ontology/DCM"},
      {"LN", "http://loinc.org"},               {"UCUM", "http://unitsofmeasure.org"},
      {"RADLEX", "http://radlex.org"},          {"ICD10", "http://hl7.org/fhir/sid/icd-10"},
      {"I10", "http://hl7.org/fhir/sid/icd-10"}, {"NCIt", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"},
      {detail::kPrivateScheme, kConceptSystem}};
  const auto it = kSystems.find(scheme);
  return it != kSystems.end() ? it->second : "urn:dicom:coding-scheme:" + scheme;
}

Json coding(const Code& c) { return {{"system", system_of(c.scheme)}, {"code", c.value}, {"display", c.meaning}}; }

Json study_reference(const std::string& study_uid) {
  return {{"type", "ImagingStudy"}, {"identifier", {{"system", "urn:dicom:uid"}, {"value", "urn:oid:" + study_uid}}}};
}

Json device_of(const ModelIdentity& m) {
  return {{"resourceType", "Device"},
          {"identifier", Json::array({{{"system", "urn:medinfer:model-package-sha256"}, {"value", m.sha256}}})},
          {"manufacturer", "medinfer"},
          {"deviceName", Json::array({{{"name", "medinfer"}, {"type", "manufacturer-name"}},
                                      {{"name", m.name}, {"type", "model-name"}}})},
          {"version", Json::array({{{"type", {{"text", "medinfer"}}}, {"value", version()}},
                                   {{"type", {{"text", "model"}}}, {"value", m.version}}})}};
}

Json observation_of(const detail::Group& g, const ReportOptions& options, const std::string& device_url,
                    const std::string& issued) {
  const Finding& f = g.finding;
  Json interpretation = Json::array();
  if (f.indeterminate) {
    interpretation.push_back({{"coding", Json::array({{{"system", kInterpretationSystem}, {"code", "IND"},
                                                       {"display", "Indeterminate"}}})},
                              {"text", "indeterminate: " + f.reason}});
  } else {
    interpretation.push_back({{"coding", Json::array({{{"system", kTierSystem}, {"code", f.tier}, {"display", f.tier}}})},
                              {"text", "risk tier " + f.tier}});
  }
  if (f.escalate) {
    interpretation.push_back({{"coding", Json::array({{{"system", kConceptSystem}, {"code", detail::kEscalation.value},
                                                       {"display", detail::kEscalation.meaning}}})},
                              {"text", "escalate"}});
  }
  if (!g.operating_point.empty()) {
    const bool pos = f.operating_point_positive;
    interpretation.push_back({{"coding", Json::array({{{"system", kInterpretationSystem}, {"code", pos ? "POS" : "NEG"},
                                                       {"display", pos ? "Positive" : "Negative"}}})},
                              {"text", fmt::format("{} at operating point {}", pos ? "positive" : "negative",
                                                   g.operating_point)}});
  }
  const Code label = detail::label_code(f.label, options);
  Json components = Json::array();
  components.push_back({{"code", {{"coding", Json::array({coding({"112002", "DCM", "Series Instance UID"})})}}},
                        {"valueString", g.series_instance_uid}});
  if (!g.sop_instance_uid.empty()) {
    components.push_back({{"code", {{"coding", Json::array({coding({"MI-SOP", detail::kPrivateScheme, "SOP Instance UID"})})}}},
                          {"valueString", g.sop_instance_uid}});
  }
  components.push_back({{"code", {{"coding", Json::array({coding(detail::kRawScore)})}}},
                        {"valueQuantity", {{"value", f.raw_score}, {"unit", "1"}, {"system", "http://unitsofmeasure.org"}, {"code", "1"}}}});
  Json o = {{"resourceType", "Observation"},
            {"status", "preliminary"},
            {"category", Json::array({{{"coding", Json::array({{{"system", "http://terminology.hl7.org/CodeSystem/observation-category"},
                                                                  {"code", "imaging"}, {"display", "Imaging"}}})}}})},
            {"code", {{"coding", Json::array({coding(label)})}, {"text", f.label}}}};
  if (!options.fhir_subject.empty()) o["subject"] = {{"reference", options.fhir_subject}};
  o["issued"] = issued;
  o["valueQuantity"] = {{"value", f.probability}, {"unit", "probability"}, {"system", "http://unitsofmeasure.org"},
                        {"code", "{probability}"}};
  o["interpretation"] = std::move(interpretation);
  if (f.indeterminate) o["note"] = Json::array({{{"text", f.reason}}});
  o["method"] = {{"text", g.method}};
  o["device"] = {{"reference", device_url}};
  o["derivedFrom"] = Json::array({study_reference(g.study_instance_uid)});
  o["component"] = std::move(components);
  return o;
}

std::string bundle_of(const detail::Content& content, const ReportOptions& options) {
  const std::string issued = detail::now_utc().iso;
  Json entries = Json::array();
  std::map<std::string, std::string> device_url;  // one Device per model (an A/B test may use two)
  for (const detail::Group& g : content.groups) {
    if (device_url.count(g.model.sha256) != 0) continue;
    const std::string url = "urn:uuid:" + medinfer::detail::random_uuid();
    device_url[g.model.sha256] = url;
    entries.push_back({{"fullUrl", url}, {"resource", device_of(g.model)}});
  }
  Json results = Json::array();
  std::string conclusion;
  for (const detail::Group& g : content.groups) {
    const std::string url = "urn:uuid:" + medinfer::detail::random_uuid();
    entries.push_back({{"fullUrl", url}, {"resource", observation_of(g, options, device_url[g.model.sha256], issued)}});
    results.push_back({{"reference", url}});
    const Finding& f = g.finding;
    conclusion += fmt::format("{}{}: p={:.3f}, {}{}", conclusion.empty() ? "" : "; ", f.label, f.probability,
                              f.indeterminate ? "indeterminate" : f.tier, f.escalate ? ", escalate" : "");
  }
  Json report = {{"resourceType", "DiagnosticReport"},
                 {"status", "preliminary"},
                 {"category", Json::array({{{"coding", Json::array({{{"system", "http://terminology.hl7.org/CodeSystem/v2-0074"},
                                                                      {"code", "RAD"}, {"display", "Radiology"}}})}}})},
                 {"code", {{"coding", Json::array({{{"system", "http://loinc.org"}, {"code", "18748-4"},
                                                    {"display", "Diagnostic imaging study"}}})},
                           {"text", options.series_description}}}};
  if (!options.fhir_subject.empty()) report["subject"] = {{"reference", options.fhir_subject}};
  report["issued"] = issued;
  report["result"] = std::move(results);
  report["imagingStudy"] = Json::array({study_reference(content.study_instance_uid)});
  report["conclusion"] = conclusion;
  entries.push_back({{"fullUrl", "urn:uuid:" + medinfer::detail::random_uuid()}, {"resource", std::move(report)}});
  Json bundle = {{"resourceType", "Bundle"}, {"id", medinfer::detail::random_uuid()}, {"type", "collection"}, {"timestamp", issued},
                 {"entry", std::move(entries)}};
  return bundle.dump();
}

}  // namespace

std::string fhir_bundle(const Result& result, const ReportOptions& options) {
  return bundle_of(detail::content_of(result), options);
}
std::string fhir_bundle(const SeriesResult& result, const ReportOptions& options) {
  return bundle_of(detail::content_of(result), options);
}
std::string fhir_bundle(const StudyResult& result, const ReportOptions& options) {
  return bundle_of(detail::content_of(result), options);
}

}  // namespace medinfer::report
