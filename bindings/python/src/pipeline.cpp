// The top of the medinfer package: the Python mirror of medinfer/pipeline.hpp (Pipeline, PipelineOptions,
// Result, SeriesResult, StudyResult, Input, Outcome, ManyOptions, CancelToken, Deployment), with the
// reports of report.hpp as Pipeline conveniences (the pipeline's label codes). Paths are str or
// os.PathLike; images are medinfer.Image or numpy arrays (borrowed, image.cpp); the GIL is released in
// every call that reads, decodes, preprocesses or infers.
#include "common.hpp"

#include <medinfer/medinfer.hpp>

#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace {

using medinfer::Finding;
using medinfer::Result;

// A Pipeline that Python can close: close() (or leaving a `with` block) drops this handle, and the
// pipeline (its model, its audit sink: a chained log gets its closing checkpoint) is released when the
// last call running on it returns. Every method takes its own reference first, under the GIL.
struct PyPipeline {
  std::shared_ptr<medinfer::Pipeline> pipeline;
  std::shared_ptr<medinfer::Pipeline> get() const {
    if (!pipeline) throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, "the Pipeline is closed");
    return pipeline;
  }
};

// The report options Python's reports use: the label codes of the pipeline's package.
medinfer::report::ReportOptions report_options(const medinfer::Pipeline& p) {
  medinfer::report::ReportOptions ro;
  ro.label_codes = medinfer::report::label_codes(*p.package());
  return ro;
}

// ManyOptions from Python: the given options (or the defaults), with batch_size / workers when given.
medinfer::ManyOptions many_options(const std::optional<medinfer::ManyOptions>& given, std::optional<int> batch_size,
                                   std::optional<unsigned> workers) {
  medinfer::ManyOptions options = given.value_or(medinfer::ManyOptions{});
  if (batch_size) options.batch_size = *batch_size;
  if (workers) options.workers = *workers;
  return options;
}

// predict_series / predict_study from Python: [directory] or a list of files, run without the GIL.
template <class Predict>
auto series_or_study(const std::vector<Path>& paths, const medinfer::ManyOptions& options, Predict predict) {
  const std::vector<std::string> files = strings(paths);
  py::gil_scoped_release release;
  const bool directory = files.size() == 1 && std::filesystem::is_directory(files[0]);
  return directory ? predict(files[0], options) : predict(files, options);
}

py::tuple result_state(const Result& r) {
  py::list findings;
  for (const Finding& f : r.findings) findings.append(finding_state(f));
  return py::make_tuple(finding_state(r), r.operating_point, findings,
                        py::make_tuple(r.model.name, r.model.version, r.model.sha256),
                        std::string(medinfer::to_string(r.arm)), r.input_sha256, r.study_instance_uid,
                        r.series_instance_uid, r.sop_instance_uid, r.preprocessing_sha256, r.latency_ms, r.batch_size);
}
Result result_from_state(const py::tuple& t) {
  if (t.size() != 12) throw std::runtime_error("Result: invalid pickled state");
  Result r;
  set_finding(r, t[0].cast<py::tuple>());
  r.operating_point = t[1].cast<std::string>();
  for (const auto& f : t[2].cast<py::list>()) {
    Finding one;
    set_finding(one, f.cast<py::tuple>());
    r.findings.push_back(std::move(one));
  }
  const auto model = t[3].cast<py::tuple>();
  r.model.name = model[0].cast<std::string>();
  r.model.version = model[1].cast<std::string>();
  r.model.sha256 = model[2].cast<std::string>();
  r.arm = t[4].cast<medinfer::Arm>();
  r.input_sha256 = t[5].cast<std::string>();
  r.study_instance_uid = t[6].cast<std::string>();
  r.series_instance_uid = t[7].cast<std::string>();
  r.sop_instance_uid = t[8].cast<std::string>();
  r.preprocessing_sha256 = t[9].cast<std::string>();
  r.latency_ms = t[10].cast<double>();
  r.batch_size = t[11].cast<int>();
  return r;
}

template <class T>
struct type_tag {
  using type = T;
};

// An Input's kind by name.
std::string input_kind(const medinfer::Input& i) {
  switch (i.kind) {
    case medinfer::Input::Kind::kPath: return "path";
    case medinfer::Input::Kind::kDicomBytes: return "dicom_bytes";
    case medinfer::Input::Kind::kImage: return "image";
  }
  return "path";
}

// What Pipeline.predict_many takes: an Input, a path, DICOM Part 10 bytes, or an Image / array.
medinfer::Input input_of(const py::handle& item) {
  if (py::isinstance<medinfer::Input>(item)) return item.cast<medinfer::Input>();
  if (py::isinstance<py::bytes>(item)) {
    return medinfer::Input::dicom(std::make_shared<const std::string>(item.cast<std::string>()));
  }
  if (py::isinstance<py::str>(item) || py::hasattr(item, "__fspath__")) {
    return medinfer::Input::file(item.cast<Path>().string());
  }
  return medinfer::Input::pixels(image_of(item, "predict_many"));
}

}  // namespace

void bind_pipeline(py::module_& m) {
  py::class_<medinfer::Deployment>(m, "Deployment", "Which models a Pipeline serves (Pipeline.deployment()).")
      .def_readonly("primary", &medinfer::Deployment::primary, "the primary model's identity")
      .def_readonly("candidate", &medinfer::Deployment::candidate, "the A/B candidate's identity (empty name without a test)")
      .def_readonly("candidate_fraction", &medinfer::Deployment::candidate_fraction, "the share of routing keys sent to the candidate");

  m.def("routing_bucket", &medinfer::routing_bucket, py::arg("key"),
        "The A/B bucket of a routing key in [0, 1): keys below the candidate fraction go to the candidate.");

  py::class_<Result>(m, "Result", "One prediction: its primary finding at the top level, every label's in "
                                  "`findings`, and its context (model, input fingerprint, UIDs, latency).")
      .def_readonly("probability", &Result::probability, "the primary finding's calibrated probability")
      .def_readonly("raw_score", &Result::raw_score, "the primary finding's logit")
      .def_readonly("confidence", &Result::confidence, "max(probability, 1 - probability)")
      .def_readonly("tier", &Result::tier, "the primary finding's tier, or 'indeterminate'")
      .def_readonly("escalate", &Result::escalate, "the primary finding escalates")
      .def_readonly("indeterminate", &Result::indeterminate, "the policy abstained on the primary finding")
      .def_readonly("reason", &Result::reason, "why indeterminate; else ''")
      .def_readonly("rule", &Result::rule, "the Rule that decided the primary finding")
      .def_readonly("operating_point", &Result::operating_point, "the primary finding's operating point name; '' without one")
      .def_readonly("operating_point_positive", &Result::operating_point_positive, "probability >= the operating point's threshold")
      .def_readonly("prediction_set", &Result::prediction_set, "with a conformal rule: the prediction set")
      .def_readonly("label", &Result::label, "the primary finding's label")
      .def_readonly("findings", &Result::findings, "one Finding per label, in the package's label order")
      .def_readonly("model", &Result::model, "the model that served this result")
      .def_readonly("arm", &Result::arm, "the Arm that served it: NONE ('') outside an A/B test, PRIMARY or CANDIDATE")
      .def_readonly("input_sha256", &Result::input_sha256, "SHA-256 of the decoded pixels (what the audit record names)")
      .def_readonly("study_instance_uid", &Result::study_instance_uid, "the input's Study Instance UID ('' for an image in memory)")
      .def_readonly("series_instance_uid", &Result::series_instance_uid, "the input's Series Instance UID")
      .def_readonly("sop_instance_uid", &Result::sop_instance_uid, "the input's SOP Instance UID")
      .def_readonly("preprocessing_sha256", &Result::preprocessing_sha256, "SHA-256 of the applied preprocessing spec")
      .def_readonly("latency_ms", &Result::latency_ms, "the library's time for this prediction, in ms")
      .def_readonly("batch_size", &Result::batch_size, "images the model ran together for this result")
      .def("to_json", [](const Result& r) { return medinfer::to_json(r); },
           "The result as one JSON object (the library's serialiser: the same fields as `medinfer predict`).")
      .def("to_dict", [](const Result& r) { return json_loads(medinfer::to_json(r)); },
           "json.loads(to_json()): the library's JSON as a dict (a Python convenience).")
      .def(py::pickle([](const Result& r) { return result_state(r); },
                      [](const py::tuple& t) { return result_from_state(t); }))
      .def("__repr__", [](const Result& r) {
        return "Result(label='" + r.label + "', probability=" + std::to_string(r.probability) + ", tier='" + r.tier +
               "', escalate=" + bool_text(r.escalate) + ")";
      });

  using medinfer::SeriesResult;
  using medinfer::StudyResult;
  py::class_<SeriesResult::Evidence>(m, "Evidence", "One evidence slice of a series finding (SeriesResult.evidence).")
      .def_readonly("label", &SeriesResult::Evidence::label, "the label it is evidence for")
      .def_readonly("slice_index", &SeriesResult::Evidence::slice_index, "position along the slice normal (0: first)")
      .def_readonly("sop_instance_uid", &SeriesResult::Evidence::sop_instance_uid, "the slice's SOP Instance UID")
      .def_readonly("probability", &SeriesResult::Evidence::probability, "the slice's calibrated probability")
      .def("__repr__", [](const SeriesResult::Evidence& e) {
        return py::str("Evidence(label={!r}, slice_index={}, probability={:.6f})")
            .format(e.label, e.slice_index, e.probability)
            .cast<std::string>();
      });
  py::class_<SeriesResult, Result>(m, "SeriesResult",
                                   "One series' result (Pipeline.predict_series): a Result for the series, with its "
                                   "aggregation, slice counts, evidence slices and warnings.")
      .def_readonly("modality", &SeriesResult::modality, "the series' modality")
      .def_readonly("aggregation", &SeriesResult::aggregation,
                    "'max', 'mean', 'noisy_or', 'top_k_mean' (2D packages) or 'volume' (a 3D package)")
      .def_readonly("slices", &SeriesResult::slices, "slices predicted (2D) or in the volume (3D)")
      .def_readonly("failed_slices", &SeriesResult::failed_slices, "2D: slices whose prediction failed")
      .def_readonly("evidence", &SeriesResult::evidence, "2D: per label, the highest-probability slices, best first")
      .def_readonly("warnings", &SeriesResult::warnings, "SeriesWarnings: geometry and unreadable slices")
      .def("to_json", [](const SeriesResult& r) { return medinfer::to_json(r); },
           "The series result as one JSON object (the library's serialiser, as `medinfer predict --by series`).")
      .def("to_dict", [](const SeriesResult& r) { return json_loads(medinfer::to_json(r)); },
           "json.loads(to_json()) (a Python convenience).")
      .def(py::pickle(
          [](const SeriesResult& r) {
            py::list evidence, warnings;
            for (const auto& e : r.evidence) evidence.append(py::make_tuple(e.label, e.slice_index, e.sop_instance_uid, e.probability));
            for (const auto& w : r.warnings) warnings.append(py::make_tuple(medinfer::dicom::to_string(w.kind), w.message));
            return py::make_tuple(result_state(r), r.modality, r.aggregation, r.slices, r.failed_slices, evidence, warnings);
          },
          [](const py::tuple& t) {
            if (t.size() != 7) throw std::runtime_error("SeriesResult: invalid pickled state");
            SeriesResult r;
            static_cast<Result&>(r) = result_from_state(t[0].cast<py::tuple>());
            r.modality = t[1].cast<std::string>();
            r.aggregation = t[2].cast<std::string>();
            r.slices = t[3].cast<std::size_t>();
            r.failed_slices = t[4].cast<std::size_t>();
            for (const auto& e : t[5].cast<py::list>()) {
              const auto one = e.cast<py::tuple>();
              r.evidence.push_back({one[0].cast<std::string>(), one[1].cast<std::size_t>(), one[2].cast<std::string>(),
                                    one[3].cast<double>()});
            }
            for (const auto& w : t[6].cast<py::list>()) {
              const auto one = w.cast<py::tuple>();
              r.warnings.push_back({one[0].cast<medinfer::dicom::SeriesWarningKind>(), one[1].cast<std::string>()});
            }
            return r;
          }))
      .def("__repr__", [](const SeriesResult& r) {
        return py::str("SeriesResult(label={!r}, probability={:.6f}, tier={!r}, aggregation={!r}, slices={})")
            .format(r.label, r.probability, r.tier, r.aggregation, r.slices)
            .cast<std::string>();
      });
  py::class_<medinfer::SkippedSeries>(m, "SkippedSeries", "A series predict_study did not run, and why.")
      .def_readonly("series_instance_uid", &medinfer::SkippedSeries::series_instance_uid, "Series Instance UID")
      .def_readonly("modality", &medinfer::SkippedSeries::modality, "the series' modality")
      .def_readonly("series_description", &medinfer::SkippedSeries::series_description, "Series Description")
      .def_readonly("reason", &medinfer::SkippedSeries::reason, "why it was not predicted")
      .def("__repr__", [](const medinfer::SkippedSeries& k) {
        return py::str("SkippedSeries(series_instance_uid={!r}, reason={!r})").format(k.series_instance_uid, k.reason)
            .cast<std::string>();
      });
  py::class_<StudyResult>(m, "StudyResult",
                          "A study's result (Pipeline.predict_study): the series predicted, and every other one "
                          "with the reason.")
      .def_readonly("study_instance_uid", &StudyResult::study_instance_uid, "Study Instance UID")
      .def_readonly("series", &StudyResult::series, "SeriesResults, in Series Instance UID order")
      .def_readonly("skipped", &StudyResult::skipped, "SkippedSeries: the series not selected, with the reason")
      .def_property_readonly(
          "failed",
          [](const StudyResult& r) {
            py::list out;
            for (const auto& [series, error] : r.failed) out.append(py::make_tuple(series, exception_object(error)));
            return out;
          },
          "(SkippedSeries, MedinferError) of each selected series whose prediction failed")
      .def_readonly("skipped_files", &StudyResult::skipped_files, "SkippedFiles: files the scan could not index")
      .def_readonly("latency_ms", &StudyResult::latency_ms, "the library's time for the study, in ms")
      .def("to_json", [](const StudyResult& r) { return medinfer::to_json(r); },
           "The study result as one JSON object (the library's serialiser).")
      .def("to_dict", [](const StudyResult& r) { return json_loads(medinfer::to_json(r)); },
           "json.loads(to_json()) (a Python convenience).")
      .def("__repr__", [](const StudyResult& r) {
        return py::str("StudyResult(study_instance_uid={!r}, series={}, skipped={}, failed={})")
            .format(r.study_instance_uid, r.series.size(), r.skipped.size(), r.failed.size())
            .cast<std::string>();
      });

  py::class_<medinfer::CancelToken>(m, "CancelToken",
                                    "Cancels a running predict_many / predict_series / predict_study from any thread "
                                    "(copies share one flag): inputs being read or run finish, the rest end in "
                                    "CancelledError.")
      .def(py::init<>())
      .def("cancel", &medinfer::CancelToken::cancel, "Asks the run to stop.")
      .def_property_readonly("cancelled", &medinfer::CancelToken::cancelled, "cancel() was called");
  py::class_<medinfer::Input> input(m, "Input",
                                    "One input of predict_many: a DICOM file, a Part 10 object in memory, or an image "
                                    "(medinfer::Input). predict_many also takes paths, bytes and images directly.");
  input.def_static("file", [](const Path& path, int frame) { return medinfer::Input::file(path.string(), frame); },
                   py::arg("path"), py::arg("frame") = -1,
                   "A DICOM file; frame -1: the package's own frame step, else frame 0.")
      .def_static(
          "dicom",
          [](const py::bytes& part10, const std::string& name) {
            return medinfer::Input::dicom(std::make_shared<const std::string>(part10.cast<std::string>()), name);
          },
          py::arg("part10"), py::arg("name") = "", "A DICOM Part 10 object in memory; name: used in errors and audit.")
      .def_static(
          "pixels",
          [](const ImageArgument& given, const std::string& routing_key) {
            medinfer::Image image = image_of(given, "Input.pixels");
            return medinfer::Input::pixels(std::move(image), routing_key);
          },
          py::arg("image"), py::arg("routing_key") = "",
          "An image in modality units (medinfer.Image, or an array borrowed as Image borrows it).")
      .def_property_readonly("kind", &input_kind, "'path', 'dicom_bytes' or 'image'")
      .def_readonly("path", &medinfer::Input::path, "the file (path), or the name used in errors (dicom_bytes)")
      .def_readonly("image", &medinfer::Input::image, "the Image (image inputs)")
      .def_readwrite("routing_key", &medinfer::Input::routing_key, "image inputs: the A/B routing key ('' : the pixels' SHA-256)")
      .def_readwrite("frame", &medinfer::Input::frame, "path / dicom_bytes: the frame to read (-1: the package's own)")
      .def_readwrite("request_id", &medinfer::Input::request_id,
                     "the host's request id, recorded in the audit record (at most 128 printable ASCII characters)")
      .def("__repr__", [](const medinfer::Input& i) {
        return py::str("Input(kind={!r}, path={!r})").format(input_kind(i), i.path).cast<std::string>();
      });
  py::class_<medinfer::ResolvedInputs>(m, "ResolvedInputs", "What Inputs.resolve made of the inputs.")
      .def_readonly("inputs", &medinfer::ResolvedInputs::inputs, "each Input to read, folders replaced by their files")
      .def_readonly("skipped", &medinfer::ResolvedInputs::skipped, "dicom.SkippedFile for each file left out")
      .def_readonly("searched", &medinfer::ResolvedInputs::searched, "the folders searched");
  py::class_<medinfer::Inputs>(m, "Inputs",
                               "The inputs of one unit of work: files, folders, Part 10 bytes and images, resolved by "
                               "the library's one rule (medinfer::Inputs).")
      .def(py::init([](const std::vector<py::object>& items) {
             medinfer::Inputs inputs;
             for (const py::object& item : items) inputs.add(input_of(item));  // a path may name a folder
             return inputs;
           }),
           py::arg("items") = std::vector<py::object>{},
           "Paths (files or folders), Input values, DICOM bytes or images, in order.")
      .def_readwrite("find", &medinfer::Inputs::find, "dicom.FindOptions: how folders are searched")
      .def("add", [](medinfer::Inputs& self, const Path& path) -> medinfer::Inputs& { return self.add(path.string()); },
           py::arg("path"), py::return_value_policy::reference_internal, "Adds a file or a folder.")
      .def("__len__", &medinfer::Inputs::size, "how many inputs were given")
      .def(
          "resolve",
          [](const medinfer::Inputs& self) {
            py::gil_scoped_release release;
            return self.resolve();
          },
          "Folders replaced by their DICOM files; NotFoundError naming what was searched when nothing is left.");
  py::class_<medinfer::Outcome>(m, "Outcome", "What became of one input of predict_many: its Result or its error.")
      .def_readonly("index", &medinfer::Outcome::index, "the input's position in the list")
      .def_readonly("result", &medinfer::Outcome::result, "the Result, or None")
      .def_property_readonly(
          "error", [](const medinfer::Outcome& o) { return o.error ? exception_object(*o.error) : py::object(py::none()); },
          "the MedinferError it ended in, or None")
      .def("ok", &medinfer::Outcome::ok, "a Result came out")
      .def("__repr__", [](const medinfer::Outcome& o) {
        return py::str("Outcome(index={}, ok={})").format(o.index, o.ok()).cast<std::string>();
      });
  py::class_<medinfer::ManyOptions>(m, "ManyOptions", "How predict_many / predict_series / predict_study run (medinfer::ManyOptions).")
      .def(py::init<>())
      .def_readwrite("workers", &medinfer::ManyOptions::workers, "threads (0: one per core; the caller's is one)")
      .def_readwrite("batch_size", &medinfer::ManyOptions::batch_size, "images per model run, 1..256")
      .def_readwrite("max_in_flight", &medinfer::ManyOptions::max_in_flight,
                     "inputs read but not yet delivered, at most (0: 2 x batch_size + 2 x workers)")
      .def_readwrite("ordered", &medinfer::ManyOptions::ordered, "deliver outcomes in input order (else as they complete)")
      .def_property(
          "on_outcome",
          [](const medinfer::ManyOptions& o) -> py::object {
            if (!o.on_outcome) return py::none();
            return py::cpp_function([f = o.on_outcome](medinfer::Outcome out) { f(std::move(out)); });
          },
          [](medinfer::ManyOptions& o, const std::optional<py::function>& fn) {
            if (!fn) {
              o.on_outcome = nullptr;
              return;
            }
            // Called on a worker without the GIL: take it for the call (pybind11's std::function caster
            // does the same for progress); the callable is released under the GIL too.
            std::function<void(medinfer::Outcome)> call = fn->cast<std::function<void(medinfer::Outcome)>>();
            o.on_outcome = [call](medinfer::Outcome&& out) { call(std::move(out)); };
          },
                     "callable(Outcome), one call at a time (with the GIL) on a worker; when set, predict_many "
                     "keeps nothing (returns []), so memory stays flat; an exception it raises stops the run")
      .def_readwrite("progress", &medinfer::ManyOptions::progress, "callable(delivered, total) after each outcome")
      .def_readwrite("cancel", &medinfer::ManyOptions::cancel, "the CancelToken that stops the run")
      .def("__copy__", [](const medinfer::ManyOptions& o) { return o; });

  py::class_<medinfer::PipelineOptions>(m, "PipelineOptions",
                                        "Pipeline.open's options (pipeline.hpp); the audit log is Pipeline.open's "
                                        "audit_log / audit_key_file.")
      .def(py::init<>())
      .def_readwrite("engine", &medinfer::PipelineOptions::engine, "EngineOptions: device, threads, half precision")
      .def_readwrite("batching", &medinfer::PipelineOptions::batching, "BatchingOptions: the dynamic batcher")
      .def_readwrite("package", &medinfer::PipelineOptions::package, "PackageOptions: trusted signing keys")
      .def_readwrite("read", &medinfer::PipelineOptions::read, "ReadOptions: how DICOM pixels are read")
      .def_property(
          "user_id", [](const medinfer::PipelineOptions& o) { return o.actor.user_id; },
          [](medinfer::PipelineOptions& o, const std::string& v) { o.actor.user_id = v; },
          "who uses the pipeline, as recorded in every audit record ('' : this process's OS account)")
      .def_readwrite("include_identifiers", &medinfer::PipelineOptions::include_identifiers,
                     "record raw UIDs in audit records instead of pseudonyms")
      .def_readwrite("audit_sink", &medinfer::PipelineOptions::audit_sink,
                     "an audit.Sink for every record (audit.CallbackSink, FileSink, ChainedFileSink, SyslogSink); "
                     "Pipeline.open's audit_log opens one instead")
      .def_property(
          "pseudonym_key", [](const medinfer::PipelineOptions& o) { return py::bytes(o.pseudonym_key); },
          [](medinfer::PipelineOptions& o, const py::bytes& key) { o.pseudonym_key = key.cast<std::string>(); },
          "HMAC key of the study/series/instance pseudonyms in audit records (audit.derive_pseudonym_key)");

  py::class_<PyPipeline> pipeline(m, "Pipeline",
                         "DICOM file -> preprocessing -> model -> calibration -> risk -> audit (medinfer::Pipeline). "
                         "Thread-safe; use as `with Pipeline.open(...) as p:` or call close().");
  pipeline.def_static(
          "open",
          [](const Path& model_dir, std::optional<medinfer::PipelineOptions> given, const std::optional<Path>& audit_log,
             const std::optional<Path>& audit_key_file) {
            medinfer::PipelineOptions options = given.value_or(medinfer::PipelineOptions{});
            if (options.actor.application_id.empty()) options.actor.application_id = "medinfer-python";
            py::gil_scoped_release release;
            if (audit_log) {
              medinfer::audit::LogRequest request;  // the library's one way to open "the log the user asked for"
              request.path = audit_log->string();
              request.key_file = audit_key_file ? audit_key_file->string() : "";
              request.key_from_environment = false;
              const medinfer::audit::OpenedLog log = medinfer::audit::open_log(request);
              options.audit_sink = log.sink;
              options.pseudonym_key = log.pseudonym_key;
            } else if (audit_key_file) {
              throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, "audit_key_file needs audit_log");
            }
            return PyPipeline{std::make_shared<medinfer::Pipeline>(medinfer::Pipeline::open(model_dir.string(), options))};
          },
          py::arg("model_dir"), py::arg("options") = py::none(), py::arg("audit_log") = py::none(),
          py::arg("audit_key_file") = py::none(),
          "Opens and verifies a model package (Pipeline::open) with PipelineOptions. audit_log: append one JSON "
          "Lines record per prediction; with audit_key_file, as a tamper-evident HMAC chain, closed by close(). "
          "Releases the GIL. Raises ModelIntegrityError, NotFoundError, InvalidArgumentError, ...")
      .def("close", [](PyPipeline& self) { self.pipeline.reset(); },
           "Releases the pipeline: its audit log is closed (a chain gets its closing checkpoint) once calls "
           "running on it return. Later calls raise InvalidArgumentError. Idempotent.")
      .def_property_readonly("closed", [](const PyPipeline& self) { return !self.pipeline; }, "close() was called")
      .def("__enter__", [](PyPipeline& self) -> PyPipeline& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](PyPipeline& self, const py::object&, const py::object&, const py::object&) {
        self.pipeline.reset();
        return false;
      })
      .def(
          "predict",
          [](const PyPipeline& self, const Path& path) {
            auto p = self.get();
            py::gil_scoped_release release;
            return p->predict(path.string());
          },
          py::arg("path"),
          "Reads a DICOM file and predicts. Thread-safe; releases the GIL. Raises InvalidDicomError, "
          "NotFoundError, UnsupportedError, AuditFailedError, ...")
      .def(
          "predict",
          [](const PyPipeline& self, const ImageArgument& given,
             std::optional<std::array<double, 2>> spacing, const std::string& routing_key) {
            auto p = self.get();
            medinfer::Image image = image_of(given, "predict");
            if (spacing) image.set_spacing(*spacing);
            py::gil_scoped_release release;
            return p->predict(image, routing_key);
          },
          py::arg("image"), py::arg("spacing") = py::none(), py::arg("routing_key") = "",
          "Predicts on an image already in memory: a medinfer.Image, or a numpy array (rows, columns) in modality "
          "units (HU for CT) or (rows, columns, 3) RGB, borrowed without a copy when C-contiguous (medinfer.Image); "
          "spacing (x, y) in mm replaces the image's (an array's is 1, 1). No header: from_file windows use the "
          "step's own window, and the quality gate sees no modality. Thread-safe; releases the GIL.")
      .def(
          "prepare",
          [](const PyPipeline& self, const Path& path) {
            auto p = self.get();
            medinfer::Tensor t;
            {
              py::gil_scoped_release release;
              t = p->prepare(path.string());
            }
            return tensor_array(std::move(t));
          },
          py::arg("path"),
          "The exact float32 tensor (1, C, H, W) the primary model would receive for this DICOM file, as "
          "predict() prepares it. The array owns the library's tensor (no copy). Releases the GIL.")
      .def_property_readonly("model", [](const PyPipeline& self) { return self.get()->model(); }, "the primary model's identity")
      .def_property_readonly(
          "labels", [](const PyPipeline& self) { return self.get()->package()->labels(); }, "The primary model's labels.")
      .def_property_readonly(
          "package",
          [](const PyPipeline& self) { return std::const_pointer_cast<medinfer::ModelPackage>(self.get()->package()); },
          "The primary model's medinfer.package.ModelPackage (task, labels, codes, intended use, signer).")
      .def_property_readonly(
          "task", [](const PyPipeline& self) { return self.get()->package()->task(); },
          "the primary model's Task: BINARY, MULTI_LABEL or MULTI_CLASS")
      .def(
          "swap_model",
          [](const PyPipeline& self, const Path& dir) {
            auto p = self.get();
            py::gil_scoped_release release;
            return p->swap_model(dir.string());
          },
          py::arg("model_dir"),
          "Opens model_dir while the current model serves, then switches atomically; calls in flight finish on "
          "the old model. Returns the new ModelIdentity. On error the current model stays.")
      .def(
          "start_ab_test",
          [](const PyPipeline& self, const Path& dir, double fraction) {
            auto p = self.get();
            py::gil_scoped_release release;
            return p->start_ab_test(dir.string(), fraction);
          },
          py::arg("candidate_dir"), py::arg("candidate_fraction"),
          "Routes candidate_fraction of studies (by Study Instance UID, see routing_bucket) to candidate_dir.")
      .def("stop_ab_test", [](const PyPipeline& self) { self.get()->stop_ab_test(); },
           "Ends the A/B test: everything goes to the primary again. No-op without a test.")
      .def("promote_candidate", [](const PyPipeline& self) { return self.get()->promote_candidate(); },
           "Ends the A/B test by making the candidate the primary; returns its identity. InvalidArgumentError "
           "without a test.")
      .def(
          "_predict_many",
          [](const PyPipeline& self, const py::list& items, const medinfer::ManyOptions& options) {
            auto p = self.get();
            std::vector<medinfer::Input> inputs;
            inputs.reserve(items.size());
            for (const auto& item : items) inputs.push_back(input_of(item));
            std::vector<medinfer::Outcome> outcomes;
            {
              py::gil_scoped_release release;
              outcomes = p->predict_many(inputs, options);
            }
            py::list out;
            for (auto& o : outcomes) {
              if (o.ok()) {
                out.append(py::cast(std::move(*o.result)));
              } else {
                out.append(exception_object(*o.error));
              }
            }
            return out;
          },
          py::arg("inputs"), py::arg("options"),
          "Pipeline::predict_many on Inputs, paths, Part 10 bytes or images, with ManyOptions (the Python "
          "predict_many wraps it with keyword options and a tqdm bar).")
      .def(
          "predict_series",
          [](const PyPipeline& self, const std::vector<Path>& files, std::optional<int> batch_size,
             std::optional<unsigned> workers, const std::optional<medinfer::ManyOptions>& options) {
            auto p = self.get();
            return series_or_study(files, many_options(options, batch_size, workers),
                                   [&p](const auto& input, const auto& o) { return p->predict_series(input, o); });
          },
          py::arg("files"), py::arg("batch_size") = py::none(), py::arg("workers") = py::none(),
          py::arg("options") = py::none(),
          "Predicts one series (Pipeline::predict_series): a list of files, or [directory]; ManyOptions (batch_size "
          "and workers, when given, override its own; its cancel token stops the run). Returns a SeriesResult "
          "(the series finding, its aggregation, evidence slices, warnings). Releases the GIL.")
      .def(
          "predict_study",
          [](const PyPipeline& self, const std::vector<Path>& files, std::optional<int> batch_size,
             std::optional<unsigned> workers, const std::optional<medinfer::ManyOptions>& options) {
            auto p = self.get();
            return series_or_study(files, many_options(options, batch_size, workers),
                                   [&p](const auto& input, const auto& o) { return p->predict_study(input, o); });
          },
          py::arg("files"), py::arg("batch_size") = py::none(), py::arg("workers") = py::none(),
          py::arg("options") = py::none(),
          "Predicts a study (Pipeline::predict_study): its series selected by the package's series_selection, each "
          "predicted, every other one listed with the reason; options as predict_series. Returns a StudyResult. "
          "Releases the GIL.");
  // report::structured_report and fhir_bundle for each result type, with this pipeline's label codes.
  auto add_reports = [&pipeline](auto tag, const char* what) {
    using R = typename decltype(tag)::type;
    pipeline.def(
        "structured_report",
        [](const PyPipeline& self, const R& r, const std::vector<Path>& sources) {
          auto p = self.get();
          const medinfer::report::ReportOptions ro = report_options(*p);
          std::string bytes;
          {
            py::gil_scoped_release release;
            bytes = medinfer::report::structured_report(r, sources_of(sources), ro).bytes;
          }
          return py::bytes(bytes);
        },
        py::arg("result"), py::arg("sources"),
        (std::string("The DICOM SR (Comprehensive SR, TID 1500) of ") + what +
         " as Part 10 bytes (report::structured_report); `sources`: the DICOM files it was predicted from, or "
         "[directory]. Label codes from this pipeline's package. Releases the GIL.").c_str());
    pipeline.def(
        "fhir_bundle",
        [](const PyPipeline& self, const R& r) {
          auto p = self.get();
          return json_loads(medinfer::report::fhir_bundle(r, report_options(*p)));
        },
        py::arg("result"), (std::string("The FHIR R4 Bundle of ") + what + " (report::fhir_bundle), as a dict.").c_str());
  };
  // SeriesResult first: pybind11 tries overloads in order, and a SeriesResult is also a Result.
  add_reports(type_tag<medinfer::StudyResult>{}, "a StudyResult");
  add_reports(type_tag<medinfer::SeriesResult>{}, "a SeriesResult");
  add_reports(type_tag<Result>{}, "an image Result");
  pipeline
      .def(
          "record_event",
          [](const PyPipeline& self, medinfer::audit::EventType type, const std::string& detail,
             medinfer::audit::Outcome outcome) {
            auto p = self.get();
            py::gil_scoped_release release;
            p->record_event(type, detail, outcome);
          },
          py::arg("type"), py::arg("detail"), py::arg("outcome") = medinfer::audit::Outcome::kOk,
          "Records a host event in the audit trail: CONFIGURATION_CHANGE, OVERRIDE or DICOM_TRANSFER (an "
          "audit.EventType), detail without patient data (at most 4096 bytes). Raises AuditFailedError when the "
          "sink fails.")
      .def("deployment", [](const PyPipeline& self) { return self.get()->deployment(); },
           "Which models this pipeline serves: the primary, and the A/B candidate with its fraction.");
}
