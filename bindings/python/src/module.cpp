// The extension medinfer._medinfer: the exception classes, the package's top level (build info, the
// Pipeline and its types) and one submodule per public header area (dicom, preprocess, calibration,
// risk, audit), re-exported by the pure-Python package medinfer/ (bindings/python/medinfer).
#include "common.hpp"

#include <medinfer/build_info.hpp>
#include <medinfer/medinfer.hpp>

PYBIND11_MODULE(_medinfer, m) {
  m.doc() = "medinfer: DICOM images to calibrated, audited risk scores (Python mirror of the C++ SDK).";
  bind_errors(m);
  m.def("version", [] { return std::string(medinfer::version()); }, "The library's semantic version.");
  m.def("build_info", [] {
    const auto b = medinfer::build_info();
    py::dict d;
    d["version"] = b.version;
    d["libtorch_version"] = b.libtorch_version;
    d["opencv_version"] = b.opencv_version;
    d["dcmtk_version"] = b.dcmtk_version;
    d["compiler"] = b.compiler;
    d["cuda_compiled"] = b.cuda_compiled;
    d["cuda_available"] = b.cuda_available;
    return d;
  }, "Versions of medinfer and its dependencies, and whether CUDA is available, as a dict.");
  py::module_ dicom = m.def_submodule("dicom");
  py::module_ preprocess = m.def_submodule("preprocess");
  py::module_ calibration = m.def_submodule("calibration");
  py::module_ risk = m.def_submodule("risk");
  py::module_ audit = m.def_submodule("audit");
  py::module_ package = m.def_submodule("package");
  // The enums first: every binding below converts to and from them.
  using namespace medinfer_python;
  register_enum<medinfer::ErrorCode>(m, "ErrorCode", "What went wrong (medinfer::ErrorCode); MedinferError.code.");
  register_enum<medinfer::Rule>(m, "Rule", "Which rule decided a finding's tier (medinfer::Rule).");
  register_enum<medinfer::Arm>(m, "Arm", "The A/B arm that served a result (medinfer::Arm); NONE outside a test.");
  register_enum<medinfer::Task>(m, "Task", "A package's task (medinfer::Task).");
  register_enum<medinfer::dicom::HeaderWarningKind>(dicom, "HeaderWarningKind", "The kind of a HeaderWarning.");
  register_enum<medinfer::dicom::SeriesWarningKind>(dicom, "SeriesWarningKind", "The kind of a SeriesWarning.");
  register_enum<medinfer::calibration::Method>(calibration, "Method", "A calibration method (calibration::Method).");
  // A type must be registered before a signature names it (else the stub and help() show a C++ name):
  // the results hold dicom's types, write_recalibrated takes Calibrators and returns a ModelIdentity,
  // Pipeline.package is a ModelPackage, risk.assess returns a Finding.
  bind_named_types(m);
  bind_dicom(dicom);
  bind_calibration(calibration);
  bind_package(package);
  bind_pipeline(m);
  bind_preprocess(preprocess);
  bind_risk(risk);
  bind_audit(audit);
}
