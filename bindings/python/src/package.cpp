// medinfer.package: the Python mirror of medinfer/package.hpp and model_package.hpp: verify_package ->
// ModelPackage (identity, task, labels and their codes, input shape, intended use, signer), and the
// author's tools (generate_signing_key, key_id, public_key_id, create, sign, write_recalibrated,
// next_minor_version). Paths are str or os.PathLike; the GIL is released while files are hashed.
#include "common.hpp"

#include <medinfer/package.hpp>

#include <memory>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

void bind_package(py::module_& m) {
  m.doc() = "Model packages: verification and the author's tools (medinfer/package.hpp, model_package.hpp).";
  py::class_<medinfer::LabelCode>(m, "LabelCode", "The coded concept a label stands for (empty for a plain name).")
      .def_readonly("code_value", &medinfer::LabelCode::code_value, "e.g. '233604007'")
      .def_readonly("coding_scheme", &medinfer::LabelCode::coding_scheme, "e.g. 'SCT'")
      .def_readonly("code_meaning", &medinfer::LabelCode::code_meaning, "e.g. 'Pneumonia'")
      .def("__repr__", [](const medinfer::LabelCode& c) {
        return py::str("LabelCode({!r}, {!r}, {!r})").format(c.code_value, c.coding_scheme, c.code_meaning)
            .cast<std::string>();
      });
  py::class_<medinfer::ModelPackage, std::shared_ptr<medinfer::ModelPackage>>(
      m, "ModelPackage", "A verified model package (verify_package; Pipeline.package).")
      .def_property_readonly("identity", &medinfer::ModelPackage::identity, "the model's ModelIdentity")
      .def_property_readonly("directory", &medinfer::ModelPackage::directory, "the package directory")
      .def_property_readonly("manifest", [](const medinfer::ModelPackage& p) { return json_loads(p.manifest_text()); },
                             "manifest.json as a dict")
      .def_property_readonly("input_shape", &medinfer::ModelPackage::input_shape, "the model's input shape")
      .def_property_readonly("output_count", &medinfer::ModelPackage::output_count, "the model's outputs")
      .def_property_readonly("task", &medinfer::ModelPackage::task, "the Task")
      .def_property_readonly("labels", &medinfer::ModelPackage::labels, "the label names, in output order")
      .def_property_readonly("label_codes", &medinfer::ModelPackage::label_codes, "a LabelCode per label")
      .def_property_readonly("model_format", &medinfer::ModelPackage::model_format, "e.g. 'torchscript'")
      .def_property_readonly("intended_use", &medinfer::ModelPackage::intended_use, "the manifest's intended use")
      .def_property_readonly("signer_key_id", &medinfer::ModelPackage::signer_key_id,
                             "the id of the key that signed it; '' when unsigned")
      .def("__repr__", [](const medinfer::ModelPackage& p) {
        return py::str("ModelPackage(name={!r}, version={!r}, task={!r})")
            .format(p.identity().name, p.identity().version, medinfer::to_string(p.task()))
            .cast<std::string>();
      });
  m.def(
      "verify_package",
      [](const Path& dir, std::optional<medinfer::PackageOptions> options) {
        const medinfer::PackageOptions o = options.value_or(medinfer::PackageOptions{});
        py::gil_scoped_release release;
        return std::make_shared<medinfer::ModelPackage>(medinfer::verify_package(dir.string(), o));
      },
      py::arg("package_dir"), py::arg("options") = py::none(),
      "Checks a package as Pipeline.open does, short of loading the model (integrity, signature under the "
      "PackageOptions, the manifest's sections). Raises ModelIntegrityError, InvalidArgumentError naming the "
      "field, NotFoundError.");
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
