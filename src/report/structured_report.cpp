// A result as a DICOM Comprehensive SR, TID 1500 "Measurement Report": what the tree says (templates
// and codes). dicom/sr_document.cpp encodes it (DCMTK dcmsr). docs/reports.md draws the tree.
#include <medinfer/build_info.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>
#include <medinfer/report.hpp>

#include "core/sha256.hpp"
#include "dicom/sr_document.hpp"
#include "report/report_content.hpp"

#include <fmt/format.h>

#include <map>
#include <set>

namespace medinfer::report {

std::map<std::string, LabelCode> label_codes(const ModelPackage& package) {
  std::map<std::string, LabelCode> out;
  for (std::size_t k = 0; k < package.labels().size(); ++k) out[package.labels()[k]] = package.label_codes()[k];
  return out;
}

namespace {

namespace sr = dicom::sr;
using Rel = sr::Item::Relation;
using detail::Code;

sr::Code c(const Code& code) { return {code.value, code.scheme, code.meaning}; }
sr::Code dcm(const char* value, const char* meaning) { return {value, "DCM", meaning}; }

struct SourceFile {
  std::string path;
  dicom::ImageHeader header;
};

// Reads each source's header; keeps those of the series the content covers (all must be of its study).
std::vector<SourceFile> read_sources(const detail::Content& content, const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error(ErrorCode::kInvalidArgument, "a report needs the DICOM files the result came from");
  const std::set<std::string> series(content.series_instance_uids.begin(), content.series_instance_uids.end());
  std::vector<SourceFile> out;
  for (const std::string& p : paths) {
    SourceFile s{p, dicom::read_header(p)};
    if (s.header.study_instance_uid != content.study_instance_uid) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("{}: belongs to another study than the result's (StudyInstanceUID differs)", p));
    }
    if (series.count(s.header.series_instance_uid) != 0) out.push_back(std::move(s));
  }
  if (out.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "none of the source files belongs to the series the result was predicted on");
  }
  return out;
}

sr::Item tracking_and_algorithm(const detail::Group& g, const Code& label, sr::Item group, bool several_series) {
  const std::string tracking = several_series ? fmt::format("{} / series {}", g.finding.label, g.series_instance_uid)
                                              : g.finding.label;
  // A TEXT item (Text Value is UT): the whole identifier, so a study's groups stay distinct.
  group.add(sr::text(Rel::kHasObsContext, dcm("112039", "Tracking Identifier"), tracking));
  group.add(sr::uidref(Rel::kHasObsContext, dcm("112040", "Tracking Unique Identifier"), sr::new_uid()));
  group.add(sr::code(Rel::kContains, dcm("121071", "Finding"), c(label)));
  // TID 4019 Algorithm Identification.
  group.add(sr::text(Rel::kHasConceptMod, dcm("111001", "Algorithm Name"), g.model.name));
  group.add(sr::text(Rel::kHasConceptMod, dcm("111003", "Algorithm Version"), g.model.version));
  std::string params = "package sha256 " + g.model.sha256 + "; " + g.method;
  if (g.arm != Arm::kNone) params += std::string("; A/B arm ") + to_string(g.arm);
  group.add(sr::text(Rel::kHasConceptMod, dcm("111002", "Algorithm Parameters"), params));
  return group;
}

}  // namespace

bool valid_uid(const std::string& uid) {
  if (uid.empty() || uid.size() > 64 || uid.front() == '.' || uid.back() == '.') return false;
  for (std::size_t i = 0; i < uid.size(); ++i) {
    const char c = uid[i];
    if (c == '.') {
      if (uid[i + 1] == '.') return false;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

namespace {

void check_options(const ReportOptions& o) {
  auto bad = [](const char* field, const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, std::string("ReportOptions::") + field + ": " + why);
  };
  if (!o.series_instance_uid.empty() && !valid_uid(o.series_instance_uid)) bad("series_instance_uid", "not a UID (digits and dots, at most 64)");
  if (!o.sop_instance_uid.empty() && !valid_uid(o.sop_instance_uid)) bad("sop_instance_uid", "not a UID (digits and dots, at most 64)");
  if (o.series_description.size() > 64) bad("series_description", "more than 64 characters (LO)");
  if (o.series_number < 0 || o.instance_number < 0) bad("series_number", "series and instance numbers must be >= 0");
}

sr::Document document_of(const detail::Content& content, const std::vector<std::string>& paths,
                         const ReportOptions& options) {
  check_options(options);
  const std::vector<SourceFile> sources = read_sources(content, paths);
  std::map<std::string, const SourceFile*> by_sop;
  for (const SourceFile& s : sources) by_sop.emplace(s.header.sop_instance_uid, &s);

  sr::Document d;
  d.template_id = "1500";
  d.private_schemes.push_back({detail::kPrivateScheme, "medinfer private concepts", "medinfer"});
  d.patient_study_source = sources.front().path;
  d.series_instance_uid = options.series_instance_uid.empty() ? sr::new_uid() : options.series_instance_uid;
  d.sop_instance_uid = options.sop_instance_uid.empty() ? sr::new_uid() : options.sop_instance_uid;
  d.series_description = options.series_description;
  d.series_number = options.series_number;
  d.instance_number = options.instance_number;
  d.manufacturer = "medinfer";
  d.model_name = "medinfer";
  d.software_versions = version();
  const detail::Now now = detail::now_utc();
  d.content_date = now.date;
  d.content_time = now.time;

  sr::Item& root = d.root = sr::container(Rel::kContains, dcm("126000", "Imaging Measurement Report"));
  root.add(sr::code(Rel::kHasConceptMod, dcm("121049", "Language of Content Item and Descendants"),
                    {"en-US", "RFC5646", "English (United States)"}));
  // TID 1002 Observer Context: the device that made the observations (medinfer).
  root.add(sr::code(Rel::kHasObsContext, dcm("121005", "Observer Type"), dcm("121007", "Device")));
  root.add(sr::uidref(Rel::kHasObsContext, dcm("121012", "Device Observer UID"),
                      sr::uid_from_hex(medinfer::detail::sha256_hex(std::string("medinfer device observer ") + version()))));
  root.add(sr::text(Rel::kHasObsContext, dcm("121013", "Device Observer Name"), "medinfer"));
  root.add(sr::text(Rel::kHasObsContext, dcm("121014", "Device Observer Manufacturer"), "medinfer"));
  root.add(sr::text(Rel::kHasObsContext, dcm("121015", "Device Observer Model Name"),
                    std::string("medinfer ") + version()));
  root.add(sr::code(Rel::kHasConceptMod, dcm("121058", "Procedure reported"), {"363679005", "SCT", "Imaging procedure"}));

  // TID 1600 Image Library: every source instance of the predicted series.
  sr::Item& library = root.add(sr::container(Rel::kContains, dcm("111028", "Image Library")));
  sr::Item& library_group = library.add(sr::container(Rel::kContains, dcm("126200", "Image Library Group")));
  for (const SourceFile& s : sources) {
    // TID 1601 Image Library Entry: an IMAGE without a name name (as DCMTK's own TID 1500 writes it).
    library_group.add(sr::image(Rel::kContains, {}, s.header.sop_class_uid, s.header.sop_instance_uid));
    d.evidence.push_back({s.header.study_instance_uid, s.header.series_instance_uid, s.header.sop_class_uid,
                          s.header.sop_instance_uid});
  }

  // TID 1501 Measurement Group per finding, under Imaging Measurements.
  sr::Item& measurements = root.add(sr::container(Rel::kContains, dcm("126010", "Imaging Measurements")));
  const bool several_series = content.series_instance_uids.size() > 1;
  for (const detail::Group& g : content.groups) {
    const Finding& f = g.finding;
    sr::Item group = tracking_and_algorithm(g, detail::label_code(f.label, options),
                                            sr::container(Rel::kContains, dcm("125007", "Measurement Group")),
                                            several_series);
    // TID 300 Measurement: the calibrated probability, inferred from the evidence instances.
    sr::Item& p = group.add(sr::num(Rel::kContains, c(detail::kProbability), f.probability, c(detail::kUnitProbability)));
    for (const auto& [sop, probability] : g.evidence) {
      const auto it = by_sop.find(sop);
      if (it == by_sop.end()) continue;  // an evidence slice whose file was not given
      (void)probability;  // the series result's evidence order is best first; the SR keeps that order
      p.add(sr::image(Rel::kInferredFrom, dcm("121112", "Source of Measurement"), it->second->header.sop_class_uid, sop));
    }
    group.add(sr::num(Rel::kContains, c(detail::kRawScore), f.raw_score, c(detail::kUnitNone)));
    // Qualitative evaluations: the risk tier, escalation, operating point, and why indeterminate.
    group.add(sr::code(Rel::kContains, c(detail::kRiskTier),
                       c(f.indeterminate ? detail::kIndeterminate : detail::private_code("T-", f.tier))));
    group.add(sr::code(Rel::kContains, c(detail::kEscalation), c(f.escalate ? detail::kYes : detail::kNo)));
    group.add(sr::text(Rel::kContains, c(detail::kDecisionRule), to_string(f.rule)));
    if (!g.operating_point.empty()) {
      group.add(sr::text(Rel::kContains, c(detail::kOperatingPoint), g.operating_point));
      group.add(sr::code(Rel::kContains, c(detail::kPositiveAtOperatingPoint),
                         c(f.operating_point_positive ? detail::kYes : detail::kNo)));
    }
    if (f.indeterminate) group.add(sr::text(Rel::kContains, c(detail::kIndeterminateReason), f.reason));
    measurements.add(std::move(group));
  }
  return d;
}

StructuredReport encode(const detail::Content& content, const std::vector<std::string>& sources,
                        const ReportOptions& options) {
  const sr::Document d = document_of(content, sources, options);
  StructuredReport out;
  out.bytes = sr::encode(d);
  out.study_instance_uid = content.study_instance_uid;
  out.series_instance_uid = d.series_instance_uid;
  out.sop_instance_uid = d.sop_instance_uid;
  return out;
}

}  // namespace

StructuredReport structured_report(const Result& result, const std::vector<std::string>& sources,
                                   const ReportOptions& options) {
  return encode(detail::content_of(result), sources, options);
}
StructuredReport structured_report(const SeriesResult& result, const std::vector<std::string>& sources,
                                   const ReportOptions& options) {
  return encode(detail::content_of(result), sources, options);
}
StructuredReport structured_report(const StudyResult& result, const std::vector<std::string>& sources,
                                   const ReportOptions& options) {
  return encode(detail::content_of(result), sources, options);
}

}  // namespace medinfer::report
