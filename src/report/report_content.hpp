// What a report says, whatever form it takes: each finding of an image, series or study result as one
// group with its context, and the codes every report uses. One home for both the DICOM SR
// (structured_report.cpp) and FHIR (fhir.cpp) forms, so the two never disagree.
#pragma once

#include <medinfer/report.hpp>

#include <string>
#include <utility>
#include <vector>

namespace medinfer::report::detail {

struct Code {
  std::string value, scheme, meaning;
};

/// One finding of a result and what it was predicted from.
struct Group {
  Finding finding;
  std::string study_instance_uid, series_instance_uid;
  std::string sop_instance_uid;   ///< an image result's instance; empty for a series
  std::string modality;
  std::string operating_point;    ///< the policy's operating point, for the result's primary finding
  ModelIdentity model;
  Arm arm = Arm::kNone;
  std::string method;             ///< "one image", "max over 12 slices (0 failed)", "volume of 40 slices"
  /// The instances the finding rests on, best first, with the probability each gave this label (the
  /// image itself for an image result, the evidence slices for a 2D series; none for a volume).
  std::vector<std::pair<std::string, double>> evidence;
};

struct Content {
  std::string study_instance_uid;
  std::vector<Group> groups;
  std::vector<std::string> series_instance_uids;  ///< the series predicted, in order
};

/// Throws Error(kInvalidArgument) for a result without a Study Instance UID, or a study without a
/// predicted series.
Content content_of(const Result& result);
Content content_of(const SeriesResult& result);
Content content_of(const StudyResult& result);

/// The label's concept: its code from the options, else (label, "99MEDINFER", label) with the value
/// cut to 16 characters (SH) and disambiguated by a hash when cut.
Code label_code(const std::string& label, const ReportOptions& options);
/// A private code for a name (risk tier): ("T-" + name or its hash, "99MEDINFER", name).
Code private_code(const std::string& prefix, const std::string& name);

// Private concepts (coding scheme 99MEDINFER, docs/reports.md lists them).
inline constexpr const char* kPrivateScheme = "99MEDINFER";
inline const Code kProbability{"MI-PROB", kPrivateScheme, "Calibrated probability"};
inline const Code kRawScore{"MI-LOGIT", kPrivateScheme, "Model output logit"};
inline const Code kRiskTier{"MI-TIER", kPrivateScheme, "Risk tier"};
inline const Code kEscalation{"MI-ESCALATE", kPrivateScheme, "Escalation recommended"};
inline const Code kOperatingPoint{"MI-OP", kPrivateScheme, "Operating point"};
inline const Code kPositiveAtOperatingPoint{"MI-OP-POSITIVE", kPrivateScheme, "Positive at operating point"};
inline const Code kIndeterminateReason{"MI-REASON", kPrivateScheme, "Indeterminate reason"};
inline const Code kDecisionRule{"MI-RULE", kPrivateScheme, "Deciding rule"};
inline const Code kIndeterminate{"MI-INDETERMINATE", kPrivateScheme, "Indeterminate"};
// Standard values.
inline const Code kYes{"373066001", "SCT", "Yes"};
inline const Code kNo{"373067005", "SCT", "No"};
inline const Code kUnitProbability{"{probability}", "UCUM", "probability"};
inline const Code kUnitNone{"1", "UCUM", "no units"};

/// "YYYYMMDD", "HHMMSS" and the ISO 8601 form of now (UTC).
struct Now {
  std::string date, time, iso;
};
Now now_utc();

}  // namespace medinfer::report::detail
