// medinfer/build_info.hpp in Python: version() and build_info() (a BuildInfo).
#include "common.hpp"

#include <medinfer/build_info.hpp>

void bind_build_info(py::module_& m) {
  m.def("version", [] { return std::string(medinfer::version()); }, "The library's semantic version.");
  using medinfer::BuildInfo;
  py::class_<BuildInfo>(m, "BuildInfo", "What this libmedinfer was built with (medinfer::BuildInfo).")
      .def_readonly("version", &BuildInfo::version, "medinfer's semantic version")
      .def_readonly("libtorch_version", &BuildInfo::libtorch_version, "the LibTorch it was compiled against")
      .def_readonly("opencv_version", &BuildInfo::opencv_version, "OpenCV's version")
      .def_readonly("dcmtk_version", &BuildInfo::dcmtk_version, "DCMTK's version")
      .def_readonly("compiler", &BuildInfo::compiler, "the compiler and its version")
      .def_readonly("cuda_compiled", &BuildInfo::cuda_compiled, "LibTorch was built with CUDA")
      .def_readonly("cuda_available", &BuildInfo::cuda_available, "... and a CUDA device is usable now")
      .def("to_dict", [](const BuildInfo& b) {
        return py::dict(py::arg("version") = b.version, py::arg("libtorch_version") = b.libtorch_version,
                        py::arg("opencv_version") = b.opencv_version, py::arg("dcmtk_version") = b.dcmtk_version,
                        py::arg("compiler") = b.compiler, py::arg("cuda_compiled") = b.cuda_compiled,
                        py::arg("cuda_available") = b.cuda_available);
      }, "The fields as a dict (a Python convenience).")
      .def("__repr__", [](const BuildInfo& b) {
        return py::str("BuildInfo(version={!r}, libtorch_version={!r}, cuda_available={})")
            .format(b.version, b.libtorch_version, b.cuda_available)
            .cast<std::string>();
      });
  m.def("build_info", &medinfer::build_info, "Versions of medinfer and its dependencies, and whether CUDA is available.");
}
