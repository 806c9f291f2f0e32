// Reports: a result in the forms a hospital files. A DICOM Comprehensive SR (TID 1500 Measurement
// Report) a PACS stores with the source study and a viewer shows, and a FHIR R4 Bundle (Observations,
// a DiagnosticReport, the Device) an EHR takes. docs/reports.md draws the SR tree with every code and
// the FHIR mapping.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/pipeline.hpp>

#include <map>
#include <string>
#include <vector>

namespace medinfer::report {

struct ReportOptions {
  /// The coded concept each label is filed under, by label (label_codes(package) gives a package's).
  /// A label missing here gets a private code: ("L-" + its name, "99MEDINFER", its name), the value
  /// named by a hash of the name when it would exceed 16 characters.
  std::map<std::string, LabelCode> label_codes;
  /// The SR's Series Instance UID; empty: a new series per report. (Reports of one run may share one.)
  std::string series_instance_uid;
  /// The SR's SOP Instance UID; empty: a new one (a random 2.25 UID).
  std::string sop_instance_uid;
  int series_number = 999;
  int instance_number = 1;
  std::string series_description = "medinfer AI findings";  ///< LO: at most 64 characters
  /// FHIR: the reference the Observations and the DiagnosticReport name as their subject (e.g.
  /// "Patient/123"); empty: no subject (the ImagingStudy identifier links them to the patient's study).
  std::string fhir_subject;
};

/// Whether `uid` is a DICOM UID: 1-64 characters of digit runs joined by single dots (PS3.5 9.1). The
/// one rule for naming a file after a UID: anything else (a NUL, a slash, "..") is refused, never cleaned.
MEDINFER_API bool valid_uid(const std::string& uid);

/// The package's label codes, by label: what ReportOptions::label_codes wants.
MEDINFER_API std::map<std::string, LabelCode> label_codes(const ModelPackage& package);

/// A DICOM SR object: its Part 10 bytes and its UIDs (the SR's study is the source's).
struct StructuredReport {
  std::string bytes;
  std::string study_instance_uid, series_instance_uid, sop_instance_uid;
};

/// The result as a Comprehensive SR (TID 1500): one measurement group per finding (label code,
/// calibrated probability as NUM in UCUM {probability}, risk tier, escalation, operating point,
/// indeterminate reason, algorithm identification (TID 4019: model name, version, package SHA-256),
/// references to the source instances), the source's Patient and General Study modules, a new
/// series, and the device observer context (medinfer and its version). `sources` are the DICOM files
/// the result was predicted from: the file of an image result; the slices of a series result; the
/// files of a study (those of the series predicted are referenced, the rest ignored). Each must belong
/// to the result's study. Throws Error: kInvalidArgument (a result without a Study Instance UID, e.g. an
/// image given as pixels; no source of the result; a source of another study; a value DICOM refuses,
/// naming it), kNotFound / kIo / kInvalidDicom for a source file. Thread-safe.
MEDINFER_API StructuredReport structured_report(const Result& result, const std::vector<std::string>& sources,
                                                const ReportOptions& options = {});
MEDINFER_API StructuredReport structured_report(const SeriesResult& result, const std::vector<std::string>& sources,
                                                const ReportOptions& options = {});
MEDINFER_API StructuredReport structured_report(const StudyResult& result, const std::vector<std::string>& sources,
                                                const ReportOptions& options = {});

/// The result as a FHIR R4 Bundle (type "collection", JSON text): a Device (medinfer and the model),
/// one Observation per finding (code from the label, valueQuantity the probability in UCUM
/// {probability}, interpretation the risk tier, escalation and operating point, derivedFrom the
/// ImagingStudy by its Study Instance UID, the Series and SOP Instance UIDs as components) and a
/// DiagnosticReport grouping them. A study's Bundle holds every predicted series' Observations under
/// one DiagnosticReport. Throws Error(kInvalidArgument) for a result without a Study Instance UID.
MEDINFER_API std::string fhir_bundle(const Result& result, const ReportOptions& options = {});
MEDINFER_API std::string fhir_bundle(const SeriesResult& result, const ReportOptions& options = {});
MEDINFER_API std::string fhir_bundle(const StudyResult& result, const ReportOptions& options = {});

}  // namespace medinfer::report
