// medinfer/model_package.hpp in Python: PackageOptions (at the top: PipelineOptions.package), and in
// medinfer.package, LabelCode, ModelPackage (identity, task, labels and their codes, input shape,
// intended use, signer) and verify_package. The GIL is released while files are hashed.
#include "common.hpp"

#include <medinfer/package.hpp>

#include <memory>
#include <optional>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

void bind_model_package(py::module_& top, py::module_& m) {
  m.doc() = "Model packages: verification and the author's tools (medinfer/model_package.hpp, package.hpp).";
  py::class_<medinfer::PackageOptions>(top, "PackageOptions", "Which package signatures to trust (model_package.hpp).")
      .def(py::init<>())
      .def_readwrite("trusted_public_keys", &medinfer::PackageOptions::trusted_public_keys,
                     "Ed25519 public keys, PEM text")
      .def_readwrite("require_signature", &medinfer::PackageOptions::require_signature, "refuse a package without a valid signature by a trusted key")
      .def_readwrite("allow_unsigned", &medinfer::PackageOptions::allow_unsigned, "with keys pinned, still open an unsigned package (with a warning)");
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
      .def_property_readonly("model_bytes", [](const medinfer::ModelPackage& p) { return py::bytes(p.model_bytes()); },
                             "the verified bytes of the model file (what a backend loads)")
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
  m.def("sha256_file", [](const Path& path) { return medinfer::sha256_file(path.string()); }, py::arg("path"),
        "The SHA-256 of a file's bytes, hex (how the manifest names its files).");
}
