// medinfer/model_identity.hpp in Python: ModelIdentity; Arm and Task are enums (enums.hpp).
#include "common.hpp"

#include <medinfer/model_identity.hpp>

void bind_model_identity(py::module_& m) {
  py::class_<medinfer::ModelIdentity>(m, "ModelIdentity", "A model's name, version and manifest SHA-256.")
      .def_readonly("name", &medinfer::ModelIdentity::name, "the package's model name")
      .def_readonly("version", &medinfer::ModelIdentity::version, "the package's version")
      .def_readonly("sha256", &medinfer::ModelIdentity::sha256, "SHA-256 of the package manifest")
      .def("__repr__", [](const medinfer::ModelIdentity& i) {
        return "ModelIdentity(name='" + i.name + "', version='" + i.version + "', sha256='" + i.sha256 + "')";
      });}
