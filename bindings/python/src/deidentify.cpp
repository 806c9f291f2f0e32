// medinfer/deidentify.hpp in medinfer.dicom: DeidentifyOptions, DeidentifyReport, deidentify_file,
// pseudonymize_uid and pseudonymize. The GIL is released while the file is rewritten.
#include "common.hpp"

#include <medinfer/deidentify.hpp>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace dicom = medinfer::dicom;

void bind_deidentify(py::module_& m) {
  py::class_<dicom::DeidentifyOptions>(m, "DeidentifyOptions", "How deidentify_file de-identifies (deidentify.hpp).")
      .def(py::init([](const std::string& key, const std::string& name) {
             dicom::DeidentifyOptions o;
             o.pseudonym_key = key;
             o.patient_name = name;
             return o;
           }),
           py::arg("pseudonym_key") = "", py::arg("patient_name") = "ANONYMIZED")
      .def_readwrite("pseudonym_key", &dicom::DeidentifyOptions::pseudonym_key,
                     "HMAC-SHA256 key (16+ bytes) the replacement UIDs and Patient ID derive from; keep it secret")
      .def_readwrite("patient_name", &dicom::DeidentifyOptions::patient_name, "written as Patient's Name")
      .def("__repr__", [](const dicom::DeidentifyOptions& o) {
        return py::str("DeidentifyOptions(pseudonym_key=<{} bytes>, patient_name={!r})")
            .format(o.pseudonym_key.size(), o.patient_name)
            .cast<std::string>();
      });
  py::class_<dicom::DeidentifyReport>(m, "DeidentifyReport", "What deidentify_file changed.")
      .def_readonly("removed", &dicom::DeidentifyReport::removed, "attributes removed (X), private ones included")
      .def_readonly("emptied", &dicom::DeidentifyReport::emptied, "attributes replaced by a zero-length value (Z)")
      .def_readonly("replaced", &dicom::DeidentifyReport::replaced, "attributes replaced by a dummy or pseudonym (D)")
      .def_readonly("uids_replaced", &dicom::DeidentifyReport::uids_replaced, "UIDs replaced by keyed pseudonym UIDs (U)")
      .def_readonly("warnings", &dicom::DeidentifyReport::warnings, "caveats to act on (burned-in annotation, ...)")
      .def("__repr__", [](const dicom::DeidentifyReport& r) {
        return py::str("DeidentifyReport(removed={}, emptied={}, replaced={}, uids_replaced={}, warnings={})")
            .format(r.removed, r.emptied, r.replaced, r.uids_replaced, r.warnings.size())
            .cast<std::string>();
      });
  m.def(
      "deidentify_file",
      [](const Path& input, const Path& output, const py::object& options) {
        // DeidentifyOptions, or the pseudonym key alone (a Python convenience).
        const dicom::DeidentifyOptions o = py::isinstance<dicom::DeidentifyOptions>(options)
                                               ? options.cast<dicom::DeidentifyOptions>()
                                               : dicom::DeidentifyOptions{options.cast<std::string>(), "ANONYMIZED"};
        py::gil_scoped_release release;
        return dicom::deidentify_file(input.string(), output.string(), o);
      },
      py::arg("input"), py::arg("output"), py::arg("options"),
      "Writes a de-identified copy (PS3.15 Annex E Basic Profile; pixel data unchanged); options: "
      "DeidentifyOptions or the pseudonym key (str). Returns a DeidentifyReport. Raises InvalidArgumentError "
      "(key shorter than 16 bytes, output equal to input), InvalidDicomError, UnsupportedError, IoError.");
  m.def("pseudonymize_uid", &dicom::pseudonymize_uid, py::arg("uid"), py::arg("key"),
        "A stable pseudonym of a UID under a key of 16+ bytes: '2.25.' and the decimal of HMAC-SHA256 (as "
        "de-identification and audit records write them).");
  m.def("pseudonymize", &dicom::pseudonymize, py::arg("value"), py::arg("key"),
        "The keyed pseudonym of any identifier (hex HMAC-SHA256, 64 characters), as audit records use.");
}
