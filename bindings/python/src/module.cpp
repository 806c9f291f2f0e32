// The extension medinfer._medinfer: the exception classes, the package's top level (the namespace
// medinfer's types: Pipeline, Image, Engine, ...) and one submodule per C++ namespace (dicom,
// preprocess, calibration, risk, audit, package, report), re-exported by the pure-Python package
// medinfer/ (bindings/python/medinfer). Each public header has its binding file (<header>.cpp).
#include "common.hpp"

PYBIND11_MODULE(_medinfer, m) {
  m.doc() = "medinfer: DICOM images to calibrated, audited risk scores (Python mirror of the C++ SDK).";
  bind_error(m);
  bind_build_info(m);
  py::module_ dicom = m.def_submodule("dicom");
  py::module_ preprocess = m.def_submodule("preprocess");
  py::module_ calibration = m.def_submodule("calibration");
  py::module_ risk = m.def_submodule("risk");
  py::module_ audit = m.def_submodule("audit");
  py::module_ package = m.def_submodule("package");
  py::module_ report = m.def_submodule("report");
  // The enums first: every binding below converts to and from them.
  using namespace medinfer_python;
  register_enum<medinfer::ErrorCode>(m, "ErrorCode", "What went wrong (medinfer::ErrorCode); MedinferError.code.");
  register_enum<medinfer::Rule>(m, "Rule", "Which rule decided a finding's tier (medinfer::Rule).");
  register_enum<medinfer::Arm>(m, "Arm", "The A/B arm that served a result (medinfer::Arm); NONE outside a test.");
  register_enum<medinfer::Task>(m, "Task", "A package's task (medinfer::Task).");
  register_enum<medinfer::PixelType>(m, "PixelType", "The type of an Image's or Volume's samples (medinfer::PixelType).");
  register_enum<medinfer::LogLevel>(m, "LogLevel", "A log message's level (medinfer::LogLevel).");
  register_enum<medinfer::dicom::HeaderWarningKind>(dicom, "HeaderWarningKind", "The kind of a HeaderWarning.");
  register_enum<medinfer::dicom::SeriesWarningKind>(dicom, "SeriesWarningKind", "The kind of a SeriesWarning.");
  register_enum<medinfer::calibration::Method>(calibration, "Method", "A calibration method (calibration::Method).");
  register_enum<medinfer::audit::EventType>(audit, "EventType", "What an audit Record records (audit::EventType).");
  register_enum<medinfer::audit::Outcome>(audit, "Outcome", "How an audited event ended (audit::Outcome).");
  register_enum<medinfer::audit::Durability>(audit, "Durability", "How a chained log writes (audit::Durability).");
  // A type must be registered before a signature names it (else the stub and help() show a C++ name).
  bind_image(m);
  bind_volume(m);
  bind_log(m);
  bind_model_identity(m);
  bind_model_package(m, package);  // PackageOptions, ModelPackage: Engine.open and the reports name them
  bind_engine(m);
  bind_dicom(m, dicom);  // ReadOptions, ImageHeader: the results hold them
  bind_series(dicom);
  bind_deidentify(dicom);
  bind_calibration(calibration);  // Calibrator: package.write_recalibrated takes them
  bind_package(package);
  bind_finding(m);  // risk.assess returns a Finding; audit Records hold them
  bind_risk(risk);
  bind_audit(audit);  // PipelineOptions.audit_sink is an audit.Sink
  bind_pipeline(m);
  bind_report(report);
  bind_preprocess(preprocess);
}
