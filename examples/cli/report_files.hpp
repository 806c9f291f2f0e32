// predict --sr DIR / --fhir DIR: one DICOM SR and/or FHIR Bundle per result (image, series or study),
// each written whole or not at all (a temporary file renamed into place).
#pragma once

#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <string>
#include <vector>

class ReportFiles {
 public:
  /// Creates the folders when missing and proves each can be written (Error kIo naming the folder).
  ReportFiles(std::string sr_dir, std::string fhir_dir, medinfer::report::ReportOptions options);
  bool enabled() const { return !sr_dir_.empty() || !fhir_dir_.empty(); }
  /// The label codes of the package the results come from.
  void use_package(const medinfer::ModelPackage& package) { options_.label_codes = medinfer::report::label_codes(package); }

  /// Writes the reports of one result, named after `key` (the source's SOP, Series or Study Instance
  /// UID), and adds {"sr": PATH, "fhir": PATH} to `line`. Throws Error when a report cannot be made or
  /// written (then no file of it is left behind).
  void write(const medinfer::Result& r, const std::vector<std::string>& sources, Json& line) const;
  void write(const medinfer::SeriesResult& r, const std::vector<std::string>& sources, Json& line) const;
  void write(const medinfer::StudyResult& r, const std::vector<std::string>& sources, Json& line) const;

 private:
  template <class R>
  void write_any(const R& r, const std::string& key, const std::vector<std::string>& sources, Json& line) const;
  std::string sr_dir_, fhir_dir_;
  medinfer::report::ReportOptions options_;
};
