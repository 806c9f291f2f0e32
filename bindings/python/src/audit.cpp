// medinfer.audit: the Python mirror of medinfer/audit.hpp's verification (Keyring, VerifyResult,
// verify_log, verify_log_with_witness). Logs are written by a Pipeline opened with an audit log
// (PipelineOptions.audit_log); this module reads them. The GIL is released while verifying.
#include "common.hpp"

#include <medinfer/audit.hpp>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace audit = medinfer::audit;

void bind_audit(py::module_& m) {
  m.doc() = "Verifying chained audit logs (medinfer/audit.hpp).";
  py::class_<audit::Keyring>(m, "Keyring", "HMAC keys by epoch; key bytes are never shown.")
      .def(py::init<>())
      .def_static("load_file", [](const Path& path) { return audit::Keyring::load_file(path.string()); }, py::arg("path"),
                  "Reads a key file (lines 'EPOCH HEX', or one line 'HEX': epoch 0). Raises NotFoundError, "
                  "InvalidArgumentError naming the line, never the key.")
      .def_static("from_environment", &audit::Keyring::from_environment, py::arg("variable") = "MEDINFER_AUDIT_KEY",
                  "The same format from an environment variable. Raises NotFoundError when unset.")
      .def_property_readonly("epochs", [](const audit::Keyring& k) {
        std::vector<std::uint32_t> out;
        for (const auto& entry : k.keys) out.push_back(entry.first);
        return out;
      }, "The epochs held (never the keys).")
      .def("current_epoch", &audit::Keyring::current_epoch, "The highest epoch (the key new records use).")
      .def("__repr__", [](const audit::Keyring& k) { return "Keyring(" + std::to_string(k.keys.size()) + " keys)"; });
  py::class_<audit::VerifyResult>(m, "VerifyResult", "What verify_log found.")
      .def_readonly("ok", &audit::VerifyResult::ok, "every line verified (and the log is closed, unless allow_unclosed)")
      .def_readonly("records", &audit::VerifyResult::records, "lines that verified before the first problem")
      .def_readonly("closed", &audit::VerifyResult::closed, "the last line is a closing checkpoint")
      .def_readonly("first_bad_index", &audit::VerifyResult::first_bad_index, "0-based line of the first problem; -1")
      .def_readonly("problem", &audit::VerifyResult::problem, "the first problem, naming the record; '' when ok")
      .def("__bool__", [](const audit::VerifyResult& r) { return r.ok; })
      .def("__repr__", [](const audit::VerifyResult& r) {
        return py::str("VerifyResult(ok={}, records={}, closed={}, first_bad_index={}, problem={!r})")
            .format(r.ok, r.records, r.closed, r.first_bad_index, r.problem)
            .cast<std::string>();
      });
  auto keyring_of = [](const py::object& keys) {
    if (py::isinstance<audit::Keyring>(keys)) return keys.cast<audit::Keyring>();
    return audit::Keyring::load_file(keys.cast<Path>().string());
  };
  m.def(
      "verify_log",
      [keyring_of](const Path& path, const py::object& keys, bool allow_unclosed) {
        const audit::Keyring ring = keyring_of(keys);
        py::gil_scoped_release release;
        return audit::verify_log(path.string(), ring, allow_unclosed);
      },
      py::arg("path"), py::arg("keys"), py::arg("allow_unclosed") = false,
      "Checks every line's MAC, index and link of a chained log; `keys` is a Keyring or a key file's path. "
      "A log without its closing checkpoint is not ok unless allow_unclosed. Raises NotFoundError, IoError.");
  m.def(
      "verify_log_with_witness",
      [keyring_of](const Path& path, const py::object& keys, const Path& witness) {
        const audit::Keyring ring = keyring_of(keys);
        py::gil_scoped_release release;
        return audit::verify_log_with_witness(path.string(), ring, witness.string());
      },
      py::arg("path"), py::arg("keys"), py::arg("witness"),
      "verify_log, and every head the witness file recorded must be in the log (a truncated or rewritten log "
      "fails even when its own chain is consistent).");
}
