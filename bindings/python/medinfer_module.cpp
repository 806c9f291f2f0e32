// Python bindings: a mirror of the C++ API (same names), plus exceptions per ErrorCode.
// The GIL is released in every call that reads, decodes or infers.
#include <medinfer/medinfer.hpp>

#include <cstring>
#include <filesystem>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

void bind_dicom(py::module_& m);  // dicom_bindings.cpp

namespace {

struct ExceptionClasses {
  py::object base;
  std::map<medinfer::ErrorCode, py::object> by_code;
};

ExceptionClasses& exceptions() {
  static ExceptionClasses* e = new ExceptionClasses();  // leaked on purpose: outlives the interpreter's teardown order
  return *e;
}

// The Python exception object for an Error (its class by code; .code the code's name). Needs the GIL.
py::object exception_object(const medinfer::Error& e) {
  auto& ex = exceptions();
  auto it = ex.by_code.find(e.code());
  py::object cls = it == ex.by_code.end() ? ex.base : it->second;
  // Messages quote file values and paths: bytes that are not UTF-8 are replaced, never raised.
  const std::string what = e.what();
  py::object message = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(what.data(), static_cast<Py_ssize_t>(what.size()), "replace"));
  py::object instance = cls(message);
  instance.attr("code") = medinfer::to_string(e.code());
  return instance;
}

// The report options Python's reports use: the label codes of the pipeline's package.
medinfer::report::ReportOptions report_options(const medinfer::Pipeline& p) {
  medinfer::report::ReportOptions ro;
  ro.label_codes = medinfer::report::label_codes(*p.package());
  return ro;
}

// predict_series / predict_study from Python: [directory] or a list of files, run without the GIL, the
// result's JSON (the library's serialiser) as a dict. With `reports`, the dict also holds "sr" (the DICOM
// SR's bytes) and "fhir" (the FHIR Bundle as a dict), made from the package's label codes.
template <class Predict>
py::object series_or_study(const medinfer::Pipeline& p, const std::vector<std::string>& files, int batch_size,
                           unsigned workers, bool reports, Predict predict) {
  medinfer::ManyOptions options;
  options.batch_size = batch_size;
  options.workers = workers;
  std::string text, sr, fhir;
  {
    py::gil_scoped_release release;
    const bool directory = files.size() == 1 && std::filesystem::is_directory(files[0]);
    const auto result = directory ? predict(files[0], options) : predict(files, options);
    text = medinfer::to_json(result);
    if (reports) {
      std::vector<std::string> sources = files;
      if (directory) {
        sources.clear();
        for (const auto& study : medinfer::dicom::scan_directory(files[0]).studies) {
          for (const auto& series : study.series) {
            for (const auto& instance : series.instances) sources.push_back(instance.path);
          }
        }
      }
      const medinfer::report::ReportOptions ro = report_options(p);
      sr = medinfer::report::structured_report(result, sources, ro).bytes;
      fhir = medinfer::report::fhir_bundle(result, ro);
    }
  }
  py::object json = py::module_::import("json");
  py::object out = json.attr("loads")(text);
  if (reports) {
    out["sr"] = py::bytes(sr);
    out["fhir"] = json.attr("loads")(fhir);
  }
  return out;
}

// medinfer.InvalidDicomError(MedinferError, ValueError) and so on: catchable by the built-in too.
void register_exceptions(py::module_& m) {
  auto& ex = exceptions();
  ex.base = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
      "medinfer.MedinferError", "Base class of every medinfer error; .code is the ErrorCode name.", PyExc_RuntimeError,
      nullptr));
  m.attr("MedinferError") = ex.base;
  const struct {
    medinfer::ErrorCode code;
    const char* name;
    PyObject* builtin;
  } table[] = {
      {medinfer::ErrorCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
      {medinfer::ErrorCode::kInvalidDicom, "InvalidDicomError", PyExc_ValueError},
      {medinfer::ErrorCode::kUnsupported, "UnsupportedError", PyExc_NotImplementedError},
      {medinfer::ErrorCode::kResourceLimit, "ResourceLimitError", PyExc_MemoryError},
      {medinfer::ErrorCode::kModelIntegrity, "ModelIntegrityError", nullptr},
      {medinfer::ErrorCode::kIo, "IoError", PyExc_OSError},
      {medinfer::ErrorCode::kNotFound, "NotFoundError", PyExc_FileNotFoundError},
      {medinfer::ErrorCode::kAuditFailed, "AuditFailedError", nullptr},
      {medinfer::ErrorCode::kInternal, "InternalError", nullptr},
      {medinfer::ErrorCode::kOverloaded, "OverloadedError", nullptr},
      {medinfer::ErrorCode::kCancelled, "CancelledError", nullptr},
  };
  for (const auto& t : table) {
    py::tuple bases = t.builtin ? py::make_tuple(ex.base, py::handle(t.builtin)) : py::make_tuple(ex.base);
    const std::string qualified = std::string("medinfer.") + t.name;
    auto cls = py::reinterpret_steal<py::object>(
        PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr));
    m.attr(t.name) = cls;
    ex.by_code[t.code] = cls;
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const medinfer::Error& e) {
      py::object instance = exception_object(e);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
    }
  });
}

}  // namespace

PYBIND11_MODULE(medinfer, m) {
  m.doc() = "medinfer: DICOM images to calibrated, audited risk scores (Python mirror of the C++ SDK).";
  register_exceptions(m);
  bind_dicom(m);

  m.def("version", [] { return std::string(medinfer::version()); }, "The library's semantic version.");
  m.def("build_info", [] {
    const auto b = medinfer::build_info();
    py::dict d;
    d["version"] = b.version;
    d["libtorch_version"] = b.libtorch_version;
    d["opencv_version"] = b.opencv_version;
    d["dcmtk_version"] = b.dcmtk_version;
    d["compiler"] = b.compiler;
    d["cuda_compiled"] = b.cuda_compiled;
    d["cuda_available"] = b.cuda_available;
    return d;
  }, "Versions of medinfer and its dependencies, and whether CUDA is available, as a dict.");

  m.def(
      "verify_audit_log",
      [](const std::string& path, const std::string& key_file, bool allow_unclosed) {
        medinfer::audit::VerifyResult r;
        {
          py::gil_scoped_release release;
          r = medinfer::audit::verify_log(path, medinfer::audit::Keyring::load_file(key_file), allow_unclosed);
        }
        py::dict d;
        d["ok"] = r.ok;
        d["records"] = r.records;
        d["closed"] = r.closed;
        d["first_bad_index"] = r.first_bad_index;
        d["problem"] = r.problem;
        return d;
      },
      py::arg("path"), py::arg("key_file"), py::arg("allow_unclosed") = false,
      "Verifies a chained audit log (see `medinfer audit verify`); returns a dict with ok, records, closed, "
      "first_bad_index, problem. Releases the GIL.");

  // The file's VOI window, for "from_file" windows: None, or (center, width[, function]).
  auto context_of = [](const py::object& file_window) {
    medinfer::preprocess::Context c;
    if (file_window.is_none()) return c;
    const auto t = file_window.cast<py::tuple>();
    if (t.size() < 2 || t.size() > 3) {
      throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                            "file_window: expected (center, width) or (center, width, function)");
    }
    c.has_file_window = true;
    c.file_window_center = t[0].cast<double>();
    c.file_window_width = t[1].cast<double>();
    if (t.size() == 3) c.file_window_function = t[2].cast<std::string>();
    return c;
  };
  auto to_numpy = [](const medinfer::Tensor& t) {
    py::array_t<float> out(std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
    std::copy(t.data.begin(), t.data.end(), out.mutable_data());
    return out;
  };
  m.def(
      "preprocess",
      [context_of, to_numpy](const std::string& spec_json,
                             py::array_t<float, py::array::c_style | py::array::forcecast> pixels,
                             std::pair<double, double> spacing, const py::object& file_window) {
        if (pixels.ndim() != 2 && !(pixels.ndim() == 3 && pixels.shape(2) == 3)) {
          throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                "preprocess: expected a 2-D array (rows, columns) or an RGB array (rows, columns, 3), got " +
                                    std::to_string(pixels.ndim()) + " dimensions");
        }
        const auto spec = medinfer::preprocess::parse_spec(spec_json);
        const auto context = context_of(file_window);
        medinfer::Image image = medinfer::Image::from_buffer(
            pixels.data(), medinfer::PixelType::kFloat32, static_cast<std::size_t>(pixels.shape(1)),
            static_cast<std::size_t>(pixels.shape(0)), pixels.ndim() == 3 ? 3 : 1);
        image.set_spacing({spacing.first, spacing.second});
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply(spec, image, context);
        }
        return to_numpy(t);
      },
      py::arg("spec_json"), py::arg("pixels"), py::arg("spacing") = std::make_pair(1.0, 1.0),
      py::arg("file_window") = py::none(),
      "Applies a preprocessing spec (the manifest's 'preprocessing' array, as JSON text) to a 2-D array of "
      "pixels in modality units (or an RGB array (rows, columns, 3)) with spacing (x, y) in mm; returns the "
      "float32 tensor [1, C, H, W]. Releases the GIL while computing.");
  m.def(
      "preprocess_volume",
      [context_of, to_numpy](const std::string& spec_json,
                             py::array_t<float, py::array::c_style | py::array::forcecast> voxels,
                             std::array<double, 3> spacing, std::array<double, 3> origin, std::array<double, 9> direction,
                             const py::object& file_window, unsigned threads) {
        if (voxels.ndim() != 3) {
          throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                "preprocess_volume: expected a 3-D array (slices, rows, columns), got " +
                                    std::to_string(voxels.ndim()) + " dimensions");
        }
        const auto spec = medinfer::preprocess::parse_spec(spec_json);
        const auto context = context_of(file_window);
        medinfer::Volume volume(medinfer::PixelType::kFloat32, static_cast<std::size_t>(voxels.shape(2)),
                                static_cast<std::size_t>(voxels.shape(1)), static_cast<std::size_t>(voxels.shape(0)));
        std::memcpy(volume.mutable_data(), voxels.data(), volume.size_bytes());
        volume.set_spacing(spacing);
        volume.set_origin(origin);
        volume.set_direction(direction);
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply_volume(spec, volume, context, threads);
        }
        return to_numpy(t);
      },
      py::arg("spec_json"), py::arg("voxels"), py::arg("spacing") = std::array<double, 3>{1.0, 1.0, 1.0},
      py::arg("origin") = std::array<double, 3>{0.0, 0.0, 0.0},
      py::arg("direction") = std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1}, py::arg("file_window") = py::none(),
      py::arg("threads") = 0,
      "Applies a preprocessing spec to a volume (slices, rows, columns) with spacing (x, y, z) in mm, origin and "
      "direction (row, column, slice cosines); returns the float32 tensor [1, C, D, H, W].");

  namespace cal = medinfer::calibration;
  py::class_<cal::Calibrator>(m, "Calibrator", "A fitted calibrator (raw score -> probability). See docs/calibration.md.")
      .def_static(
          "fit",
          [](const std::string& method, const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
            py::gil_scoped_release release;
            return cal::Calibrator::fit(cal::parse_method(method), scores, labels, bins);
          },
          py::arg("method"), py::arg("scores"), py::arg("labels"), py::arg("bins") = 15,
          "Fits 'temperature', 'platt', 'isotonic', 'histogram' or 'beta' on raw scores and 0/1 labels.")
      .def_static(
          "from_json", [](const std::string& text) { return cal::parse_calibration(text).at(0); }, py::arg("text"))
      .def("apply", &cal::Calibrator::apply, py::arg("score"), "Calibrated probability of one raw score.")
      .def(
          "apply_many",
          [](const cal::Calibrator& c, const std::vector<double>& scores) {
            std::vector<double> out;
            out.reserve(scores.size());
            for (double s : scores) out.push_back(c.apply(s));
            return out;
          },
          py::arg("scores"), "Calibrated probabilities of a sequence of raw scores.")
      .def("to_json", &cal::Calibrator::to_json)
      .def_property_readonly("method", [](const cal::Calibrator& c) { return std::string(cal::to_string(c.method())); })
      .def_property_readonly("parameters", &cal::Calibrator::parameters)
      .def_property_readonly("knots", &cal::Calibrator::knots)
      .def_property_readonly("values", &cal::Calibrator::values);

  m.def(
      "compute_metrics",
      [](const std::vector<double>& p, const std::vector<int>& y, double threshold, int bins) {
        const cal::Metrics r = cal::compute_metrics(p, y, threshold, bins);
        py::dict d;
        d["count"] = r.count;
        d["positives"] = r.positives;
        d["ece_positive"] = r.ece_positive;
        d["ece_top_label"] = r.ece_top_label;
        d["ece_equal_mass"] = r.ece_equal_mass;
        d["mce"] = r.mce;
        d["brier"] = r.brier;
        d["nll"] = r.nll;
        d["auc"] = r.auc;
        d["threshold"] = r.threshold;
        d["sensitivity"] = r.sensitivity;
        d["specificity"] = r.specificity;
        d["ppv"] = r.ppv;
        d["npv"] = r.npv;
        return d;
      },
      py::arg("probabilities"), py::arg("labels"), py::arg("threshold") = 0.5, py::arg("bins") = 15,
      "Calibration and discrimination metrics as a dict (see docs/calibration.md for definitions).");
  m.def(
      "bootstrap_intervals",
      [](const std::vector<double>& p, const std::vector<int>& y, double threshold, int resamples, std::uint64_t seed,
         double level) {
        std::map<std::string, cal::Interval> r;
        {
          py::gil_scoped_release release;
          r = cal::bootstrap_intervals(p, y, threshold, resamples, seed, level);
        }
        py::dict d;
        for (const auto& [k, v] : r) d[py::str(k)] = py::make_tuple(v.low, v.high);
        return d;
      },
      py::arg("probabilities"), py::arg("labels"), py::arg("threshold") = 0.5, py::arg("resamples") = 1000,
      py::arg("seed") = 0, py::arg("level") = 0.95, "Percentile bootstrap intervals: {metric: (low, high)}.");

  py::class_<medinfer::ModelIdentity>(m, "ModelIdentity")
      .def_readonly("name", &medinfer::ModelIdentity::name)
      .def_readonly("version", &medinfer::ModelIdentity::version)
      .def_readonly("sha256", &medinfer::ModelIdentity::sha256)
      .def("__repr__", [](const medinfer::ModelIdentity& i) {
        return "ModelIdentity(name='" + i.name + "', version='" + i.version + "', sha256='" + i.sha256 + "')";
      });

  py::class_<medinfer::Finding>(m, "Finding", "One label's finding (Result.findings).")
      .def_readonly("label", &medinfer::Finding::label)
      .def_readonly("probability", &medinfer::Finding::probability)
      .def_readonly("raw_score", &medinfer::Finding::raw_score)
      .def_readonly("confidence", &medinfer::Finding::confidence)
      .def_readonly("tier", &medinfer::Finding::tier)
      .def_readonly("escalate", &medinfer::Finding::escalate)
      .def_readonly("indeterminate", &medinfer::Finding::indeterminate)
      .def_readonly("reason", &medinfer::Finding::reason)
      // Rules and arms are C++ enums; Python sees their names, as the JSON does.
      .def_property_readonly("rule", [](const medinfer::Finding& f) { return std::string(medinfer::to_string(f.rule)); })
      .def_readonly("operating_point_positive", &medinfer::Finding::operating_point_positive)
      .def_readonly("prediction_set", &medinfer::Finding::prediction_set)
      .def("__repr__", [](const medinfer::Finding& f) {
        return "Finding(label='" + f.label + "', probability=" + std::to_string(f.probability) + ", tier='" +
               f.tier + "', escalate=" + (f.escalate ? "True" : "False") + ")";
      });

  py::class_<medinfer::Deployment>(m, "Deployment", "Which models a Pipeline serves (Pipeline.deployment()).")
      .def_readonly("primary", &medinfer::Deployment::primary)
      .def_readonly("candidate", &medinfer::Deployment::candidate)
      .def_readonly("candidate_fraction", &medinfer::Deployment::candidate_fraction);

  m.def("routing_bucket", &medinfer::routing_bucket, py::arg("key"),
        "The A/B bucket of a routing key in [0, 1): keys below the candidate fraction go to the candidate.");
  m.def("backend_formats", &medinfer::backend_formats, "The model formats this process can run.");

  py::class_<medinfer::Result>(m, "Result")
      .def_readonly("probability", &medinfer::Result::probability)
      .def_readonly("raw_score", &medinfer::Result::raw_score)
      .def_readonly("confidence", &medinfer::Result::confidence)
      .def_readonly("tier", &medinfer::Result::tier)
      .def_readonly("escalate", &medinfer::Result::escalate)
      .def_readonly("indeterminate", &medinfer::Result::indeterminate)
      .def_readonly("reason", &medinfer::Result::reason)
      .def_property_readonly("rule", [](const medinfer::Result& r) { return std::string(medinfer::to_string(r.rule)); })
      .def_readonly("operating_point", &medinfer::Result::operating_point)
      .def_readonly("operating_point_positive", &medinfer::Result::operating_point_positive)
      .def_readonly("prediction_set", &medinfer::Result::prediction_set)
      .def_readonly("label", &medinfer::Result::label)
      .def_readonly("findings", &medinfer::Result::findings)
      .def_readonly("model", &medinfer::Result::model)
      .def_property_readonly("arm", [](const medinfer::Result& r) { return std::string(medinfer::to_string(r.arm)); })
      .def_readonly("input_sha256", &medinfer::Result::input_sha256)
      .def_readonly("study_instance_uid", &medinfer::Result::study_instance_uid)
      .def_readonly("series_instance_uid", &medinfer::Result::series_instance_uid)
      .def_readonly("sop_instance_uid", &medinfer::Result::sop_instance_uid)
      .def_readonly("latency_ms", &medinfer::Result::latency_ms)
      .def_readonly("batch_size", &medinfer::Result::batch_size)
      .def("to_json", [](const medinfer::Result& r) { return medinfer::to_json(r); },
           "The result as one JSON object (the library's serialiser: the same fields as `medinfer predict`).")
      .def("__repr__", [](const medinfer::Result& r) {
        return "Result(probability=" + std::to_string(r.probability) + ", tier='" + r.tier +
               "', escalate=" + (r.escalate ? "True" : "False") + ")";
      });

  py::class_<medinfer::Pipeline>(m, "Pipeline")
      .def_static(
          "open",
          [](const std::string& model_dir, const std::optional<std::string>& audit_log,
             const std::optional<std::string>& audit_key_file, const std::string& user_id, int intra_op_threads,
             const std::string& device, bool half_precision, int max_batch_size, int max_delay_us) {
            medinfer::PipelineOptions options;
            options.engine.intra_op_threads = intra_op_threads;
            options.engine.device = device;
            options.engine.half_precision = half_precision;
            options.batching.max_batch_size = max_batch_size;
            options.batching.max_delay_us = max_delay_us;
            options.actor = {user_id, "medinfer-python"};
            py::gil_scoped_release release;
            if (audit_log) {
              medinfer::audit::LogRequest request;  // the library's one way to open "the log the user asked for"
              request.path = *audit_log;
              request.key_file = audit_key_file.value_or("");
              request.key_from_environment = false;
              const medinfer::audit::OpenedLog log = medinfer::audit::open_log(request);
              options.audit_sink = log.sink;
              options.pseudonym_key = log.pseudonym_key;
            } else if (audit_key_file) {
              throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, "audit_key_file needs audit_log");
            }
            return medinfer::Pipeline::open(model_dir, options);
          },
          py::arg("model_dir"), py::arg("audit_log") = py::none(), py::arg("audit_key_file") = py::none(),
          py::arg("user_id") = "", py::arg("intra_op_threads") = 1, py::arg("device") = "cpu",
          py::arg("half_precision") = false, py::arg("max_batch_size") = 0, py::arg("max_delay_us") = 2000,
          "Opens and verifies a model package. audit_log: append one JSON Lines record per prediction to this "
          "file; with audit_key_file, as a tamper-evident HMAC chain (closed when the Pipeline is garbage "
          "collected). user_id: the actor recorded. device: 'cpu' or 'cuda:N'; half_precision: float16 on CUDA; "
          "max_batch_size > 1 turns on the dynamic batcher (max_delay_us). Releases the GIL. Raises ModelIntegrityError, NotFoundError, "
          "InvalidArgumentError, ...")
      .def(
          "predict", [](const medinfer::Pipeline& p, const std::string& path) { return p.predict(path); },
          py::arg("path"), py::call_guard<py::gil_scoped_release>(),
          "Reads a DICOM file and predicts. Thread-safe; releases the GIL. Raises InvalidDicomError, "
          "NotFoundError, UnsupportedError, AuditFailedError, ...")
      .def(
          "predict_array",
          [](const medinfer::Pipeline& p, py::array_t<float, py::array::c_style | py::array::forcecast> pixels,
             std::pair<double, double> spacing, const std::string& routing_key) {
            if (pixels.ndim() != 2 && !(pixels.ndim() == 3 && pixels.shape(2) == 3)) {
              throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                    "predict_array: expected (rows, columns) or (rows, columns, 3), got " +
                                        std::to_string(pixels.ndim()) + " dimensions");
            }
            medinfer::Image image = medinfer::Image::from_buffer(
                pixels.data(), medinfer::PixelType::kFloat32, static_cast<std::size_t>(pixels.shape(1)),
                static_cast<std::size_t>(pixels.shape(0)), pixels.ndim() == 3 ? 3 : 1);
            image.set_spacing({spacing.first, spacing.second});
            py::gil_scoped_release release;
            return p.predict(image, routing_key);
          },
          py::arg("pixels"), py::arg("spacing") = std::make_pair(1.0, 1.0), py::arg("routing_key") = "",
          "Predicts on an image already in memory: a 2-D array in modality units (HU for CT) or an RGB array, "
          "with pixel spacing (x, y) in mm. No file header: from_file windows use the step's own window, and the "
          "quality gate sees no modality. Thread-safe; releases the GIL.")
      .def(
          "prepare",
          [to_numpy](const medinfer::Pipeline& p, const std::string& path) {
            medinfer::Tensor t;
            {
              py::gil_scoped_release release;
              t = p.prepare(path);
            }
            return to_numpy(t);
          },
          py::arg("path"),
          "The exact float32 tensor (1, C, H, W) the primary model would receive for this DICOM file, as "
          "predict() prepares it (read options, VOI window, preprocessing spec). Releases the GIL.")
      .def_property_readonly("model", &medinfer::Pipeline::model)
      .def_property_readonly(
          "labels", [](const medinfer::Pipeline& p) { return p.package()->labels(); }, "The primary model's labels.")
      .def_property_readonly(
          "task", [](const medinfer::Pipeline& p) { return std::string(medinfer::to_string(p.package()->task())); },
          "'binary', 'multi-label' or 'multi-class'.")
      .def("swap_model", &medinfer::Pipeline::swap_model, py::arg("model_dir"), py::call_guard<py::gil_scoped_release>(),
           "Opens model_dir while the current model serves, then switches atomically; calls in flight finish on "
           "the old model. Returns the new ModelIdentity. On error the current model stays.")
      .def("start_ab_test", &medinfer::Pipeline::start_ab_test, py::arg("candidate_dir"), py::arg("candidate_fraction"),
           py::call_guard<py::gil_scoped_release>(),
           "Routes candidate_fraction of studies (by Study Instance UID, see routing_bucket) to candidate_dir.")
      .def("stop_ab_test", &medinfer::Pipeline::stop_ab_test, py::call_guard<py::gil_scoped_release>())
      .def("promote_candidate", &medinfer::Pipeline::promote_candidate, py::call_guard<py::gil_scoped_release>())
      .def(
          "predict_many",
          [](const medinfer::Pipeline& p, const std::vector<std::string>& paths, int batch_size, unsigned workers,
             const std::optional<py::function>& progress) {
            std::vector<medinfer::Input> inputs;
            for (const auto& path : paths) inputs.push_back(medinfer::Input::file(path));
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
              outcomes = p.predict_many(inputs, options);
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
          "Predicts many DICOM files in one call (Pipeline::predict_many): reading and preprocessing on `workers` "
          "threads (0: one per core) overlapped with batched inference. Returns one item per path, in order: its "
          "Result, or the exception for that file (never raised: one bad file does not stop the others). "
          "progress(done, total) is called after each. Releases the GIL.")
      .def(
          "predict_series",
          [](const medinfer::Pipeline& p, const std::vector<std::string>& files, int batch_size, unsigned workers,
             bool reports) {
            return series_or_study(p, files, batch_size, workers, reports, [&p](const auto& input, const auto& options) {
              return p.predict_series(input, options);
            });
          },
          py::arg("files"), py::arg("batch_size") = 4, py::arg("workers") = 0, py::arg("reports") = false,
          "Predicts one series (Pipeline::predict_series): a list of files, or [directory]. Returns the series "
          "result as a dict (the library's JSON: findings, aggregation, evidence, warnings, ...); with reports=True "
          "also 'sr' (DICOM SR bytes, TID 1500) and 'fhir' (the FHIR R4 Bundle, a dict). Releases the GIL.")
      .def(
          "predict_study",
          [](const medinfer::Pipeline& p, const std::vector<std::string>& files, int batch_size, unsigned workers,
             bool reports) {
            return series_or_study(p, files, batch_size, workers, reports, [&p](const auto& input, const auto& options) {
              return p.predict_study(input, options);
            });
          },
          py::arg("files"), py::arg("batch_size") = 4, py::arg("workers") = 0, py::arg("reports") = false,
          "Predicts a study (Pipeline::predict_study): its series selected by the package's series_selection, each "
          "predicted, every other one listed with the reason. Returns a dict (with reports=True also 'sr' and "
          "'fhir', as predict_series). Releases the GIL.")
      .def(
          "structured_report",
          [](const medinfer::Pipeline& p, const medinfer::Result& r, const std::vector<std::string>& sources) {
            const medinfer::report::ReportOptions ro = report_options(p);
            std::string bytes;
            {
              py::gil_scoped_release release;
              bytes = medinfer::report::structured_report(r, sources, ro).bytes;
            }
            return py::bytes(bytes);
          },
          py::arg("result"), py::arg("sources"),
          "The DICOM SR (Comprehensive SR, TID 1500) of an image Result as Part 10 bytes (report::structured_report); "
          "`sources`: the DICOM file(s) it was predicted from. Label codes from this pipeline's package.")
      .def(
          "fhir_bundle",
          [](const medinfer::Pipeline& p, const medinfer::Result& r) {
            const medinfer::report::ReportOptions ro = report_options(p);
            return py::module_::import("json").attr("loads")(medinfer::report::fhir_bundle(r, ro));
          },
          py::arg("result"), "The FHIR R4 Bundle of an image Result (report::fhir_bundle), as a dict.")
      .def("deployment", &medinfer::Pipeline::deployment);
}
