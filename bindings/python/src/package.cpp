// medinfer.package: the Python mirror of medinfer/package.hpp, the author's tools (generate_signing_key,
// key_id, public_key_id, create, sign, write_recalibrated, next_minor_version); verify_package and
// ModelPackage are model_package.cpp's. Paths are str or os.PathLike.
#include "common.hpp"

#include <medinfer/package.hpp>

#include <memory>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

void bind_package(py::module_& m) {
  namespace pk = medinfer::package;
  py::class_<pk::SigningKey>(m, "SigningKey", "An Ed25519 key pair (generate_signing_key).")
      .def_readonly("private_pem", &pk::SigningKey::private_pem, "keep secret (PKCS#8 PEM)")
      .def_readonly("public_pem", &pk::SigningKey::public_pem, "give to hosts to pin")
      .def("__repr__", [](const pk::SigningKey& k) { return "SigningKey(id=" + pk::key_id(k.public_pem) + ")"; });
  m.def("generate_signing_key", &pk::generate_signing_key, "A new Ed25519 key pair.");
  m.def("key_id", &pk::key_id, py::arg("pem"), "The id hosts see for a key (public or private PEM).");
  m.def("public_key_id", &pk::public_key_id, py::arg("public_pem"),
        "The id of a key a host pins; InvalidArgumentError for anything but an Ed25519 public key.");
  m.def(
      "create",
      [](const Path& model_file, const Path& manifest_template, const Path& out_dir) {
        py::gil_scoped_release release;
        pk::create(model_file.string(), manifest_template.string(), out_dir.string());
      },
      py::arg("model_file"), py::arg("manifest_template"), py::arg("out_dir"),
      "Writes a package into out_dir (new or empty) from a model file and a manifest template, each file pinned "
      "by SHA-256, and verifies it.");
  m.def(
      "sign",
      [](const Path& dir, const std::string& private_pem) {
        py::gil_scoped_release release;
        return pk::sign(dir.string(), private_pem);
      },
      py::arg("directory"), py::arg("private_pem"),
      "Signs a verified package's manifest (manifest.sig); returns the key id.");
  m.def(
      "write_recalibrated",
      [](const Path& dir, const std::vector<medinfer::calibration::Calibrator>& calibrators, const py::object& report,
         const Path& out_dir) {
        const std::string report_json = json_text(report);
        py::gil_scoped_release release;
        return pk::write_recalibrated(dir.string(), calibrators, report_json, out_dir.string());
      },
      py::arg("package_dir"), py::arg("calibrators"), py::arg("report"), py::arg("out_dir"),
      "The next minor version of a package with new calibrators (and `report`, a dict or JSON text, as "
      "calibration_report.json), verified; returns its ModelIdentity.");
  m.def("next_minor_version", &pk::next_minor_version, py::arg("version"), "'1.1.0' -> '1.2.0'.");
}
