// medinfer/report.hpp in Python: medinfer.report with ReportOptions, label_codes(package),
// structured_report(result, sources, options) -> StructuredReport (Part 10 bytes and UIDs) and
// fhir_bundle(result, options) -> str, for Result, SeriesResult and StudyResult. (Pipeline's
// structured_report / fhir_bundle are conveniences over these with the pipeline's label codes.)
#include "common.hpp"

#include <medinfer/dicom.hpp>
#include <medinfer/report.hpp>
#include <medinfer/series.hpp>

#include <filesystem>
#include <optional>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace report = medinfer::report;

// The report's source files: the paths, folders resolved by the library's one rule (medinfer::Inputs).
std::vector<std::string> sources_of(const std::vector<Path>& paths) {
  std::vector<std::string> out;
  if (paths.empty()) return out;  // structured_report names what is missing: the result's source files
  for (const auto& input : medinfer::Inputs(strings(paths)).resolve().inputs) out.push_back(input.path);
  return out;
}

namespace {

template <class R>
void add_result_type(py::module_& m, const char* what) {
  m.def(
      "structured_report",
      [](const R& r, const std::vector<Path>& sources, std::optional<report::ReportOptions> options) {
        const report::ReportOptions o = options.value_or(report::ReportOptions{});
        py::gil_scoped_release release;
        return report::structured_report(r, sources_of(sources), o);
      },
      py::arg("result"), py::arg("sources"), py::arg("options") = py::none(),
      (std::string("The DICOM SR (Comprehensive SR, TID 1500) of ") + what +
       "; sources: the DICOM files it was predicted from, or [directory]. Raises InvalidArgumentError (no Study "
       "Instance UID, a source of another study), NotFoundError, InvalidDicomError. Releases the GIL.")
          .c_str());
  m.def(
      "fhir_bundle",
      [](const R& r, std::optional<report::ReportOptions> options) {
        return report::fhir_bundle(r, options.value_or(report::ReportOptions{}));
      },
      py::arg("result"), py::arg("options") = py::none(),
      (std::string("The FHIR R4 Bundle (collection) of ") + what + ", as JSON text.").c_str());
}

}  // namespace

void bind_report(py::module_& m) {
  m.doc() = "DICOM SR (TID 1500) and FHIR R4 reports of results (medinfer/report.hpp).";
  py::class_<report::ReportOptions>(m, "ReportOptions", "What a report is filed under (report.hpp).")
      .def(py::init<>())
      .def_readwrite("label_codes", &report::ReportOptions::label_codes,
                     "dict label -> package.LabelCode (label_codes(package)); a label missing gets a private code")
      .def_readwrite("series_instance_uid", &report::ReportOptions::series_instance_uid, "the SR's series; '' : a new one")
      .def_readwrite("sop_instance_uid", &report::ReportOptions::sop_instance_uid, "the SR's SOP Instance UID; '' : a new one")
      .def_readwrite("series_number", &report::ReportOptions::series_number, "the SR series' number")
      .def_readwrite("instance_number", &report::ReportOptions::instance_number, "the SR's instance number")
      .def_readwrite("series_description", &report::ReportOptions::series_description, "at most 64 characters")
      .def_readwrite("fhir_subject", &report::ReportOptions::fhir_subject, "FHIR subject reference, e.g. 'Patient/123'");
  py::class_<report::StructuredReport>(m, "StructuredReport", "A DICOM SR object: Part 10 bytes and its UIDs.")
      .def_property_readonly("bytes", [](const report::StructuredReport& r) { return py::bytes(r.bytes); },
                             "the DICOM Part 10 file's bytes")
      .def_readonly("study_instance_uid", &report::StructuredReport::study_instance_uid, "the source's study")
      .def_readonly("series_instance_uid", &report::StructuredReport::series_instance_uid, "the SR's series")
      .def_readonly("sop_instance_uid", &report::StructuredReport::sop_instance_uid, "the SR's SOP Instance UID")
      .def("__repr__", [](const report::StructuredReport& r) {
        return py::str("StructuredReport(sop_instance_uid={!r}, bytes=<{}>)").format(r.sop_instance_uid, r.bytes.size())
            .cast<std::string>();
      });
  m.def("label_codes", &report::label_codes, py::arg("package"),
        "A package's label codes by label: what ReportOptions.label_codes wants.");
  // SeriesResult before Result: pybind11 tries overloads in order, and a SeriesResult is also a Result.
  add_result_type<medinfer::StudyResult>(m, "a StudyResult");
  add_result_type<medinfer::SeriesResult>(m, "a SeriesResult");
  add_result_type<medinfer::Result>(m, "an image Result");
}
