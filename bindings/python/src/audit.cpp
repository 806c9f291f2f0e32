// medinfer.audit: the Python mirror of medinfer/audit.hpp: Record (and Actor, InputWarning) with its
// serialisers (JSON line, DICOM/ATNA XML, FHIR AuditEvent), the sinks (CallbackSink calling Python,
// FileSink, ChainedFileSink with key rotation and witnesses, SyslogSink), open_log, Keyring,
// derive_pseudonym_key and verification. EventType, Outcome and Durability are enums (enums.hpp).
// The GIL is released while writing files and verifying.
#include "common.hpp"

#include <medinfer/audit.hpp>

#include <map>
#include <memory>
#include <optional>

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace audit = medinfer::audit;

void bind_audit(py::module_& m) {
  m.doc() = "Audit records, sinks, chained logs and their verification (medinfer/audit.hpp).";
  py::class_<audit::Keyring>(m, "Keyring", "HMAC keys by epoch; key bytes are never shown.")
      .def(py::init<>())
      .def(py::init([](const std::map<std::uint32_t, py::bytes>& keys) {
             audit::Keyring k;
             for (const auto& [epoch, key] : keys) k.keys[epoch] = key.cast<std::string>();
             return k;
           }),
           py::arg("keys"), "A keyring of {epoch: key bytes (16..64)}.")
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
  py::class_<audit::Actor>(m, "Actor", "Who asked: host-supplied ids, recorded as given (no patient data).")
      .def(py::init<>())
      .def_readwrite("user_id", &audit::Actor::user_id, "the user")
      .def_readwrite("application_id", &audit::Actor::application_id, "the application")
      .def("__repr__", [](const audit::Actor& a) {
        return py::str("Actor(user_id={!r}, application_id={!r})").format(a.user_id, a.application_id).cast<std::string>();
      });
  py::class_<audit::InputWarning>(m, "InputWarning", "A header problem of the input that did not stop the prediction.")
      .def(py::init<>())
      .def_readwrite("code", &audit::InputWarning::code, "the warning kind's name ('invalid_value', ...)")
      .def_readwrite("tag", &audit::InputWarning::tag, "the element, '(gggg,eeee)'")
      .def_readwrite("message", &audit::InputWarning::message, "the message, the input's path as '<input>'");
  using audit::Record;
  py::class_<Record>(m, "Record",
                     "One audit event (medinfer::audit::Record): no patient name, ID, birth date, accession number or "
                     "path; studies referenced by keyed pseudonyms.")
      .def(py::init<>())
      .def_readwrite("timestamp", &Record::timestamp, "RFC 3339 UTC with microseconds")
      .def_readwrite("event_id", &Record::event_id, "random UUID (version 4)")
      .def_readwrite("request_id", &Record::request_id, "the host's request id; '' when none")
      .def_readwrite("sequence", &Record::sequence, "emission order (a chained log's own numbering); 0 for checkpoints")
      .def_readwrite("event", &Record::event, "the EventType")
      .def_readwrite("actor", &Record::actor, "the Actor")
      .def_readwrite("host", &Record::host, "this machine's host name")
      .def_readwrite("model", &Record::model, "the ModelIdentity")
      .def_readwrite("preprocessing_sha256", &Record::preprocessing_sha256, "SHA-256 of the preprocessing spec")
      .def_readwrite("input_sha256", &Record::input_sha256, "SHA-256 of the decoded pixels; '' if not decoded")
      .def_readwrite("study_ref", &Record::study_ref, "the study's pseudonym (or UID on opt-in); may be ''")
      .def_readwrite("series_ref", &Record::series_ref, "the series' pseudonym")
      .def_readwrite("instance_ref", &Record::instance_ref, "the instance's pseudonym")
      .def_readwrite("outcome", &Record::outcome, "the Outcome: OK, INDETERMINATE or ERROR")
      .def_readwrite("finding", &Record::finding, "inference: the primary Finding")
      .def_readwrite("findings", &Record::findings, "multi-output packages: every label's Finding")
      .def_readwrite("arm", &Record::arm, "the A/B Arm")
      .def_readwrite("error_code", &Record::error_code, "the ErrorCode when outcome is ERROR, else None")
      .def_readwrite("error_message", &Record::error_message, "the error, the input's path as '<input>'")
      .def_readwrite("latency_ms", &Record::latency_ms, "the prediction's time in ms")
      .def_readwrite("detail", &Record::detail, "free text of non-inference events")
      .def_readwrite("input_warnings", &Record::input_warnings, "InputWarnings of the input's header")
      .def("__repr__", [](const Record& r) {
        return py::str("Record(event={!r}, outcome={!r}, sequence={}, event_id={!r})")
            .format(audit::to_string(r.event), audit::to_string(r.outcome), r.sequence, r.event_id)
            .cast<std::string>();
      });
  m.def("to_json_line", &audit::to_json_line, py::arg("record"), "The record as one JSON object on one line.");
  m.def("from_json_line", &audit::from_json_line, py::arg("line"),
        "Parses a line to_json_line (or a chained log) wrote; chain fields are ignored. Raises InvalidArgumentError "
        "naming the field.");
  m.def("to_atna_xml", &audit::to_atna_xml, py::arg("record"), "The record as a DICOM PS3.15 A.5 (IHE ATNA) audit message.");
  m.def("to_fhir_audit_event", &audit::to_fhir_audit_event, py::arg("record"), "The record as a FHIR R4 AuditEvent (JSON text).");

  py::class_<audit::Sink, std::shared_ptr<audit::Sink>>(m, "Sink", "A destination for audit records (thread-safe).")
      .def(
          "write",
          [](audit::Sink& sink, const Record& r) {
            py::gil_scoped_release release;
            sink.write(r);
          },
          py::arg("record"), "Writes one record. Raises AuditFailedError when it cannot be written whole.");
  py::class_<audit::CallbackSink, audit::Sink, std::shared_ptr<audit::CallbackSink>>(
      m, "CallbackSink", "Calls a Python function with every Record, from the predicting thread (with the GIL).")
      .def_static("create", &audit::CallbackSink::create, py::arg("fn"),
                  "fn(record: Record); an exception it raises fails the prediction with AuditFailedError.");
  py::class_<audit::FileSink, audit::Sink, std::shared_ptr<audit::FileSink>>(
      m, "FileSink", "Plain JSON Lines, one record per line, flushed after each (not tamper-evident).")
      .def_static("open", [](const Path& path) { return audit::FileSink::open(path.string()); }, py::arg("path"),
                  "Creates or appends to path. Raises IoError naming it.");
  py::class_<audit::WitnessHead>(m, "WitnessHead", "A chained log's head at a checkpoint, for a witness to keep.")
      .def_readonly("log_id", &audit::WitnessHead::log_id, "the log's id")
      .def_readonly("chain_index", &audit::WitnessHead::chain_index, "the checkpoint line's chain index")
      .def_readonly("mac", &audit::WitnessHead::mac, "the checkpoint line's MAC")
      .def_readonly("timestamp", &audit::WitnessHead::timestamp, "when it was written")
      .def_readonly("reason", &audit::WitnessHead::reason, "'periodic', 'close', 'key rotation to epoch N', ...")
      .def("__repr__", [](const audit::WitnessHead& h) {
        return py::str("WitnessHead(chain_index={}, reason={!r})").format(h.chain_index, h.reason).cast<std::string>();
      });
  m.def("witness_file", [](const Path& path) { return audit::witness_file(path.string()); }, py::arg("path"),
        "A witness (callable(WitnessHead)) appending one fsync'd JSON line per head to path; keep it on another "
        "disk or host. Raises IoError.");
  py::class_<audit::ChainOptions>(m, "ChainOptions", "How a ChainedFileSink writes.")
      .def(py::init<>())
      .def_readwrite("durability", &audit::ChainOptions::durability, "Durability: STRICT (fsync per record) or BUFFERED")
      .def_readwrite("queue_capacity", &audit::ChainOptions::queue_capacity, "BUFFERED: records queued at most")
      .def_readwrite("checkpoint_every", &audit::ChainOptions::checkpoint_every,
                     "a checkpoint after every N records (0: only on rotation and close)")
      .def_readwrite("witness", &audit::ChainOptions::witness, "callable(WitnessHead) for every checkpoint, or None");
  py::class_<audit::ChainedFileSink, audit::Sink, std::shared_ptr<audit::ChainedFileSink>>(
      m, "ChainedFileSink", "A tamper-evident JSON Lines log: every line HMAC-chained to the one before.")
      .def_static(
          "open",
          [](const Path& path, const audit::Keyring& keys, std::optional<audit::ChainOptions> options) {
            const audit::ChainOptions o = options.value_or(audit::ChainOptions{});
            py::gil_scoped_release release;
            return audit::ChainedFileSink::open(path.string(), keys, o);
          },
          py::arg("path"), py::arg("keys"), py::arg("options") = py::none(),
          "Creates the log, or verifies an existing one's last line and continues its chain. Raises IoError, "
          "AuditFailedError (a torn or unverifiable tail), InvalidArgumentError (no key).")
      .def(
          "rotate_key",
          [](audit::ChainedFileSink& s, std::uint32_t epoch, const py::bytes& key) {
            const std::string k = key.cast<std::string>();
            py::gil_scoped_release release;
            s.rotate_key(epoch, k);
          },
          py::arg("epoch"), py::arg("key"), "Writes a checkpoint, then continues under (epoch, key); epoch must grow.")
      .def(
          "close",
          [](audit::ChainedFileSink& s) {
            py::gil_scoped_release release;
            s.close();
          },
          "Drains, writes the closing checkpoint, fsyncs and closes (idempotent). Raises AuditFailedError.")
      .def_property_readonly("dropped", &audit::ChainedFileSink::dropped, "records dropped by a full BUFFERED queue")
      .def_property_readonly("written", &audit::ChainedFileSink::written, "lines written (records and checkpoints)")
      .def("__enter__", [](const std::shared_ptr<audit::ChainedFileSink>& s) { return s; })
      .def("__exit__", [](audit::ChainedFileSink& s, const py::object&, const py::object&, const py::object&) {
        py::gil_scoped_release release;
        s.close();
        return false;
      });
  py::class_<audit::SyslogSink, audit::Sink, std::shared_ptr<audit::SyslogSink>>(
      m, "SyslogSink", "RFC 5424 syslog over UDP or TCP (RFC 6587 octet counting), facility 13 (log audit).")
      .def_static(
          "open",
          [](const std::string& host, std::uint16_t port, const std::string& transport, const std::string& app) {
            if (transport != "udp" && transport != "tcp") {
              throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                    "SyslogSink.open: transport must be 'udp' or 'tcp', not '" + transport + "'");
            }
            const auto t = transport == "tcp" ? audit::SyslogSink::Transport::kTcp : audit::SyslogSink::Transport::kUdp;
            py::gil_scoped_release release;
            return audit::SyslogSink::open(host, port, t, app);
          },
          py::arg("host"), py::arg("port"), py::arg("transport") = "udp", py::arg("app_name") = "medinfer",
          "Opens a syslog destination; transport 'udp' or 'tcp'. Raises IoError (cannot resolve or connect).");

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
  m.def("derive_pseudonym_key", [](const audit::Keyring& k) { return py::bytes(audit::derive_pseudonym_key(k)); },
        py::arg("keys"),
        "The key for PipelineOptions.pseudonym_key derived from the keyring's oldest key (stable across rotation).");
  py::class_<audit::LogRequest>(m, "LogRequest", "The audit log a user asked for (what every host's --audit-* options say).")
      .def(py::init<>())
      .def_property("path", [](const audit::LogRequest& r) { return r.path; },
                    [](audit::LogRequest& r, const Path& p) { r.path = p.string(); }, "the JSON Lines file")
      .def_property("key_file", [](const audit::LogRequest& r) { return r.key_file; },
                    [](audit::LogRequest& r, const Path& p) { r.key_file = p.string(); },
                    "a key file making the log a chain ('' : $MEDINFER_AUDIT_KEY when key_from_environment)")
      .def_readwrite("key_from_environment", &audit::LogRequest::key_from_environment, "read $MEDINFER_AUDIT_KEY")
      .def_readwrite("durability", &audit::LogRequest::durability, "STRICT or BUFFERED (needs a key)")
      .def_property("witness_path", [](const audit::LogRequest& r) { return r.witness_path; },
                    [](audit::LogRequest& r, const Path& p) { r.witness_path = p.string(); },
                    "a witness file for the chain's heads (needs a key)");
  py::class_<audit::OpenedLog>(m, "OpenedLog", "An opened audit log: give sink and pseudonym_key to PipelineOptions.")
      .def_readonly("sink", &audit::OpenedLog::sink, "the Sink")
      .def_readonly("chain", &audit::OpenedLog::chain, "the same sink when chained (close() it when done), else None")
      .def_property_readonly("pseudonym_key", [](const audit::OpenedLog& l) { return py::bytes(l.pseudonym_key); },
                             "derive_pseudonym_key of the keyring (chained); b'' for a plain log");
  m.def(
      "open_log",
      [](const audit::LogRequest& request) {
        py::gil_scoped_release release;
        return audit::open_log(request);
      },
      py::arg("request"), "Opens the log a LogRequest describes. Raises what Keyring.load_file and the sinks raise.");
  auto keyring_of = [](const py::object& keys) {
    if (py::isinstance<audit::Keyring>(keys)) return keys.cast<audit::Keyring>();
    return audit::Keyring::load_file(keys.cast<Path>().string());
  };
  m.def(
      "verify_log",
      [keyring_of](const Path& path, const py::object& keys, bool allow_unclosed,
                   const std::shared_ptr<audit::Sink>& report_to) {
        const audit::Keyring ring = keyring_of(keys);
        py::gil_scoped_release release;
        return audit::verify_log(path.string(), ring, allow_unclosed, report_to);
      },
      py::arg("path"), py::arg("keys"), py::arg("allow_unclosed") = false, py::arg("report_to") = nullptr,
      "Checks every line's MAC, index and link of a chained log; `keys` is a Keyring or a key file's path. "
      "A log without its closing checkpoint is not ok unless allow_unclosed; report_to: a Sink that receives a "
      "log_verified record with the outcome. Raises NotFoundError, IoError.");
  m.def(
      "verify_log_with_witness",
      [keyring_of](const Path& path, const py::object& keys, const Path& witness, bool allow_unclosed) {
        const audit::Keyring ring = keyring_of(keys);
        py::gil_scoped_release release;
        return audit::verify_log_with_witness(path.string(), ring, witness.string(), allow_unclosed);
      },
      py::arg("path"), py::arg("keys"), py::arg("witness"), py::arg("allow_unclosed") = false,
      "verify_log, and every head the witness file recorded must be in the log (a truncated or rewritten log "
      "fails even when its own chain is consistent).");
}
