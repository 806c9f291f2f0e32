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
  bind_pipeline(m);
  py::module_ dicom = m.def_submodule("dicom");
  bind_dicom(dicom);
  py::module_ preprocess = m.def_submodule("preprocess");
  bind_preprocess(preprocess);
  py::module_ calibration = m.def_submodule("calibration");
  bind_calibration(calibration);
  py::module_ risk = m.def_submodule("risk");
  bind_risk(risk);
  py::module_ audit = m.def_submodule("audit");
  bind_audit(audit);
}
