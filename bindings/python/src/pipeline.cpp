// The top of the medinfer package: the Python mirror of medinfer/pipeline.hpp (Pipeline, its options,
// Result, predict_many's outcomes), finding.hpp (Finding), model_identity.hpp, engine.hpp's options and
// backend list, and the reports of report.hpp as Pipeline methods. Paths are str or os.PathLike; the
// GIL is released in every call that reads, decodes, preprocesses or infers.
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

// The files a list names: the paths as given, or a single directory's files (every DICOM file under it,
// as predict_series / predict_study scan it), for reports' sources.
std::vector<std::string> sources_of(const std::vector<Path>& paths) {
  std::vector<std::string> files = strings(paths);
  if (files.size() != 1 || !std::filesystem::is_directory(files[0])) return files;
  std::vector<std::string> out;
  for (const auto& study : medinfer::dicom::scan_directory(files[0]).studies) {
    for (const auto& series : study.series) {
      for (const auto& instance : series.instances) out.push_back(instance.path);
    }
  }
  return out;
}

// predict_series / predict_study from Python: [directory] or a list of files, run without the GIL.
template <class Predict>
auto series_or_study(const std::vector<Path>& paths, int batch_size, unsigned workers, Predict predict) {
  medinfer::ManyOptions options;
  options.batch_size = batch_size;
  options.workers = workers;
  const std::vector<std::string> files = strings(paths);
  py::gil_scoped_release release;
  const bool directory = files.size() == 1 && std::filesystem::is_directory(files[0]);
  return directory ? predict(files[0], options) : predict(files, options);
}

// Pickling: a Finding / Result as a tuple of its fields (enums by their library names, read back through
// their casters), and back.
py::tuple finding_state(const Finding& f) {
  return py::make_tuple(f.label, f.probability, f.raw_score, f.confidence, f.tier, f.escalate, f.indeterminate,
                        f.reason, std::string(medinfer::to_string(f.rule)), f.operating_point_positive,
                        f.prediction_set);
}
void set_finding(Finding& f, const py::tuple& t) {
  if (t.size() != 11) throw std::runtime_error("Finding: invalid pickled state");
  f.label = t[0].cast<std::string>();
  f.probability = t[1].cast<double>();
  f.raw_score = t[2].cast<double>();
  f.confidence = t[3].cast<double>();
  f.tier = t[4].cast<std::string>();
  f.escalate = t[5].cast<bool>();
  f.indeterminate = t[6].cast<bool>();
  f.reason = t[7].cast<std::string>();
  f.rule = t[8].cast<medinfer::Rule>();
  f.operating_point_positive = t[9].cast<bool>();
  f.prediction_set = t[10].cast<std::vector<std::string>>();
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

std::string bool_text(bool b) { return b ? "True" : "False"; }

template <class T>
struct type_tag {
  using type = T;
};

// An image from a numpy array of pixels in modality units: (rows, columns) or (rows, columns, 3).
medinfer::Image image_of(const py::array_t<float, py::array::c_style | py::array::forcecast>& pixels,
                         std::pair<double, double> spacing, const char* who) {
  if (pixels.ndim() != 2 && !(pixels.ndim() == 3 && pixels.shape(2) == 3)) {
    throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                          std::string(who) + ": expected (rows, columns) or (rows, columns, 3), got " +
                              std::to_string(pixels.ndim()) + " dimensions");
  }
  medinfer::Image image = medinfer::Image::from_buffer(
      pixels.data(), medinfer::PixelType::kFloat32, static_cast<std::size_t>(pixels.shape(1)),
      static_cast<std::size_t>(pixels.shape(0)), pixels.ndim() == 3 ? 3 : 1);
  image.set_spacing({spacing.first, spacing.second});
  return image;
}

}  // namespace

void bind_named_types(py::module_& m) {
  // ---- options (engine.hpp, model_package.hpp, pipeline.hpp) ----
  py::class_<medinfer::EngineOptions>(m, "EngineOptions", "How the model runs (medinfer/engine.hpp).")
      .def(py::init<>())
      .def_readwrite("device", &medinfer::EngineOptions::device, "'cpu' or 'cuda:N'")
      .def_readwrite("intra_op_threads", &medinfer::EngineOptions::intra_op_threads,
                     "LibTorch intra-op threads (process-wide); 0 leaves LibTorch's setting alone")
      .def_readwrite("half_precision", &medinfer::EngineOptions::half_precision, "float16 on CUDA");
  py::class_<medinfer::BatchingOptions>(m, "BatchingOptions", "The dynamic batcher (off when max_batch_size <= 1).")
      .def(py::init<>())
      .def_readwrite("max_batch_size", &medinfer::BatchingOptions::max_batch_size, "0 or 1: off; else 2..256 images merged into one model run")
      .def_readwrite("max_delay_us", &medinfer::BatchingOptions::max_delay_us, "the longest a batch waits to fill after its oldest request (0..1,000,000)")
      .def_readwrite("max_queue", &medinfer::BatchingOptions::max_queue, "requests waiting at most; beyond that predict raises OverloadedError");
  py::class_<medinfer::PackageOptions>(m, "PackageOptions", "Which package signatures to trust (model_package.hpp).")
      .def(py::init<>())
      .def_readwrite("trusted_public_keys", &medinfer::PackageOptions::trusted_public_keys,
                     "Ed25519 public keys, PEM text")
      .def_readwrite("require_signature", &medinfer::PackageOptions::require_signature, "refuse a package without a valid signature by a trusted key")
      .def_readwrite("allow_unsigned", &medinfer::PackageOptions::allow_unsigned, "with keys pinned, still open an unsigned package (with a warning)");
  py::class_<medinfer::dicom::ReadOptions>(m, "ReadOptions", "How DICOM pixels are read (dicom.hpp).")
      .def(py::init<>())
      .def_readwrite("apply_modality_lut", &medinfer::dicom::ReadOptions::apply_modality_lut, "rescale stored values to modality units (HU for CT)")
      .def_readwrite("frame", &medinfer::dicom::ReadOptions::frame, "the frame to read (0-based)")
      .def_readwrite("convert_color", &medinfer::dicom::ReadOptions::convert_color, "YBR and palette colour to RGB")
      .def_readwrite("invert_monochrome1", &medinfer::dicom::ReadOptions::invert_monochrome1, "invert MONOCHROME1 so higher is brighter");
  py::class_<medinfer::ModelIdentity>(m, "ModelIdentity", "A model's name, version and manifest SHA-256.")
      .def_readonly("name", &medinfer::ModelIdentity::name, "the package's model name")
      .def_readonly("version", &medinfer::ModelIdentity::version, "the package's version")
      .def_readonly("sha256", &medinfer::ModelIdentity::sha256, "SHA-256 of the package manifest")
      .def("__repr__", [](const medinfer::ModelIdentity& i) {
        return "ModelIdentity(name='" + i.name + "', version='" + i.version + "', sha256='" + i.sha256 + "')";
      });
}

void bind_pipeline(py::module_& m) {
  py::class_<Finding>(m, "Finding", "One label's finding (Result.findings; risk.assess).")
      .def_readonly("label", &Finding::label, "the package's label ('' from risk.assess)")
      .def_readonly("probability", &Finding::probability, "calibrated p(label present)")
      .def_readonly("raw_score", &Finding::raw_score, "the model's logit")
      .def_readonly("confidence", &Finding::confidence, "max(probability, 1 - probability)")
      .def_readonly("tier", &Finding::tier, "the tier's name, or 'indeterminate'")
      .def_readonly("escalate", &Finding::escalate, "probability >= the policy's escalation threshold (kept when indeterminate)")
      .def_readonly("indeterminate", &Finding::indeterminate, "the policy abstained (see reason, rule)")
      .def_readonly("reason", &Finding::reason, "why indeterminate; else ''")
      .def_readonly("rule", &Finding::rule, "the Rule that decided (its value: 'tier_cutpoints', 'quality_gate.rows', ...)")
      .def_readonly("operating_point_positive", &Finding::operating_point_positive, "with an operating point: probability >= its threshold")
      .def_readonly("prediction_set", &Finding::prediction_set, "with a conformal rule: a subset of ['positive', 'negative']")
      .def(py::pickle([](const Finding& f) { return finding_state(f); },
                      [](const py::tuple& t) {
                        Finding f;
                        set_finding(f, t);
                        return f;
                      }))
      .def("__repr__", [](const Finding& f) {
        return "Finding(label='" + f.label + "', probability=" + std::to_string(f.probability) + ", tier='" +
               f.tier + "', escalate=" + bool_text(f.escalate) + ")";
      });

  py::class_<medinfer::Deployment>(m, "Deployment", "Which models a Pipeline serves (Pipeline.deployment()).")
      .def_readonly("primary", &medinfer::Deployment::primary, "the primary model's identity")
      .def_readonly("candidate", &medinfer::Deployment::candidate, "the A/B candidate's identity (empty name without a test)")
      .def_readonly("candidate_fraction", &medinfer::Deployment::candidate_fraction, "the share of routing keys sent to the candidate");

  m.def("routing_bucket", &medinfer::routing_bucket, py::arg("key"),
        "The A/B bucket of a routing key in [0, 1): keys below the candidate fraction go to the candidate.");
  m.def("backend_formats", &medinfer::backend_formats, "The model formats this process can run.");

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
                     "record raw UIDs in audit records instead of pseudonyms");

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
          [](const PyPipeline& self, const py::array_t<float, py::array::c_style | py::array::forcecast>& pixels,
             std::pair<double, double> spacing, const std::string& routing_key) {
            auto p = self.get();
            medinfer::Image image = image_of(pixels, spacing, "predict");
            py::gil_scoped_release release;
            return p->predict(image, routing_key);
          },
          py::arg("image"), py::arg("spacing") = std::make_pair(1.0, 1.0), py::arg("routing_key") = "",
          "Predicts on an image already in memory: a 2-D array in modality units (HU for CT) or an RGB array "
          "(rows, columns, 3), pixel spacing (x, y) in mm. No header: from_file windows use the step's own window, "
          "and the quality gate sees no modality. Thread-safe; releases the GIL.")
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
          [](const PyPipeline& self, const std::vector<Path>& paths, int batch_size, unsigned workers,
             const std::optional<py::function>& progress) {
            auto p = self.get();
            std::vector<medinfer::Input> inputs;
            inputs.reserve(paths.size());
            for (const auto& path : paths) inputs.push_back(medinfer::Input::file(path.string()));
            medinfer::ManyOptions options;
            options.batch_size = batch_size;
            options.workers = workers;
            if (progress) {
              options.progress = [&progress](std::size_t done, std::size_t total) {
                py::gil_scoped_acquire gil;
                (*progress)(done, total);
              };
            }
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
          py::arg("paths"), py::arg("batch_size") = 4, py::arg("workers") = 0, py::arg("progress") = py::none(),
          "Pipeline::predict_many on files (the Python predict_many wraps it with a tqdm bar).")
      .def(
          "predict_series",
          [](const PyPipeline& self, const std::vector<Path>& files, int batch_size, unsigned workers) {
            auto p = self.get();
            return series_or_study(files, batch_size, workers,
                                   [&p](const auto& input, const auto& options) { return p->predict_series(input, options); });
          },
          py::arg("files"), py::arg("batch_size") = 4, py::arg("workers") = 0,
          "Predicts one series (Pipeline::predict_series): a list of files, or [directory]. Returns a SeriesResult "
          "(the series finding, its aggregation, evidence slices, warnings). Releases the GIL.")
      .def(
          "predict_study",
          [](const PyPipeline& self, const std::vector<Path>& files, int batch_size, unsigned workers) {
            auto p = self.get();
            return series_or_study(files, batch_size, workers,
                                   [&p](const auto& input, const auto& options) { return p->predict_study(input, options); });
          },
          py::arg("files"), py::arg("batch_size") = 4, py::arg("workers") = 0,
          "Predicts a study (Pipeline::predict_study): its series selected by the package's series_selection, each "
          "predicted, every other one listed with the reason. Returns a StudyResult. Releases the GIL.");
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
      .def("deployment", [](const PyPipeline& self) { return self.get()->deployment(); },
           "Which models this pipeline serves: the primary, and the A/B candidate with its fraction.");
}
