// medinfer.calibration: the Python mirror of medinfer/calibration.hpp: Calibrator (factories, fit,
// apply), the package forms (parse_calibration, check_for_task, to_json, probabilities), multi-class
// temperature, select_method, Metrics / compute_metrics / bootstrap_intervals, operating points,
// conformal thresholds and the reliability PNG. The GIL is released while fitting and computing.
#include "common.hpp"

#include <medinfer/calibration.hpp>

#include <map>
#include <optional>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

void bind_calibration(py::module_& m) {
  m.doc() = "Calibrators and calibration metrics (medinfer/calibration.hpp).";
  namespace cal = medinfer::calibration;
  py::class_<cal::Calibrator>(m, "Calibrator", "A fitted calibrator (raw score -> probability). See docs/calibration.md.")
      .def_static(
          "fit",
          [](const py::object& method, const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
            // a Method, or its name (an unknown name: InvalidArgumentError listing the methods)
            const cal::Method m = cal::parse_method(py::str(method).cast<std::string>());
            py::gil_scoped_release release;
            return cal::Calibrator::fit(m, scores, labels, bins);
          },
          py::arg("method"), py::arg("scores"), py::arg("labels"), py::arg("bins") = 15,
          "Fits 'temperature', 'platt', 'isotonic', 'histogram' or 'beta' on raw scores and 0/1 labels.")
      .def(py::init<>(), "The identity calibration (temperature 1).")
      .def_static("temperature", &cal::Calibrator::temperature, py::arg("t"), "sigmoid(s / t), t > 0.")
      .def_static("platt", &cal::Calibrator::platt, py::arg("a"), py::arg("b"), "1 / (1 + exp(a s + b)) (scikit-learn's sign).")
      .def_static("isotonic", &cal::Calibrator::isotonic, py::arg("x"), py::arg("y"),
                  "Linear interpolation of (x, y): x ascending, y non-decreasing in [0, 1].")
      .def_static("histogram", &cal::Calibrator::histogram, py::arg("edges"), py::arg("values"),
                  "The value of sigmoid(s)'s bin: edges 0 = e0 < ... < en = 1, values in [0, 1].")
      .def_static("beta", &cal::Calibrator::beta, py::arg("a"), py::arg("b"), py::arg("c"),
                  "sigmoid(a ln p - b ln(1 - p) + c), p = sigmoid(s); a, b >= 0.")
      .def_static(
          "from_json", [](const std::string& text) { return cal::parse_calibration(text).at(0); }, py::arg("text"),
          "A calibrator from its JSON (a manifest's 'calibration' object, as to_json writes it).")
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
      .def("to_json", &cal::Calibrator::to_json, "The calibrator as JSON (what a manifest's 'calibration' takes).")
      .def_property_readonly("method", &cal::Calibrator::method, "the Method: TEMPERATURE, PLATT, ISOTONIC, HISTOGRAM or BETA")
      .def_property_readonly("parameters", &cal::Calibrator::parameters, "the fitted parameters")
      .def_property_readonly("knots", &cal::Calibrator::knots, "isotonic / histogram: the score knots")
      .def_property_readonly("values", &cal::Calibrator::values, "isotonic / histogram: the probability at each knot")
      .def("__repr__", [](const cal::Calibrator& c) {
        return py::str("Calibrator(method={!r}, parameters={})").format(cal::to_string(c.method()), c.parameters())
            .cast<std::string>();
      });
  m.def(
      "parse_calibration",
      [](const py::object& value, medinfer::Task task, std::size_t label_count) {
        return cal::parse_calibration(json_text(value), task, label_count);
      },
      py::arg("value"), py::arg("task"), py::arg("label_count"),
      "A package's 'calibration' value (JSON text or Python data) for a Task and label count, checked as a "
      "package's is. Raises InvalidArgumentError naming the field.");
  m.def("check_for_task", &cal::check_for_task, py::arg("calibrators"), py::arg("task"), py::arg("label_count"),
        py::arg("where") = "calibration",
        "Raises InvalidArgumentError naming `where` unless the calibrators fit the task: binary one, multi-label one "
        "per label, multi-class exactly one temperature.");
  m.def("to_json", py::overload_cast<const std::vector<cal::Calibrator>&, medinfer::Task>(&cal::to_json),
        py::arg("calibrators"), py::arg("task"), "The package's 'calibration' value for calibrators of a task (JSON text).");
  m.def("probabilities", &cal::probabilities, py::arg("calibrators"), py::arg("task"), py::arg("logits"),
        "Each label's calibrated probability from the model's logits, as the library computes every probability "
        "it reports (softmax(z / T) for multi-class).");
  m.def(
      "fit_multiclass_temperature",
      [](const std::vector<std::vector<double>>& logits, const std::vector<int>& classes) {
        py::gil_scoped_release release;
        return cal::fit_multiclass_temperature(logits, classes);
      },
      py::arg("logits"), py::arg("classes"),
      "The temperature minimising the mean NLL of softmax(z / T) at the true class (classes[i] indexes logits[i]).");
  m.def("multiclass_nll", &cal::multiclass_nll, py::arg("logits"), py::arg("classes"), py::arg("temperature"),
        "The mean negative log-likelihood of softmax(z / temperature) at the true class.");
  py::class_<cal::MethodSelection>(m, "MethodSelection", "Which method select_method chose, and why.")
      .def_readonly("method", &cal::MethodSelection::method, "the Method with the lowest mean cross-validated ECE")
      .def_readonly("mean_ece", &cal::MethodSelection::mean_ece, "mean ECE by method name (unfittable methods absent)")
      .def_readonly("folds", &cal::MethodSelection::folds, "cross-validation folds")
      .def("__repr__", [](const cal::MethodSelection& s) {
        return py::str("MethodSelection(method={!r}, mean_ece={})").format(cal::to_string(s.method), s.mean_ece)
            .cast<std::string>();
      });
  m.def(
      "select_method",
      [](const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
        py::gil_scoped_release release;
        return cal::select_method(scores, labels, bins);
      },
      py::arg("scores"), py::arg("labels"), py::arg("bins") = 15,
      "The method with the lowest mean ECE over 5 folds (fold = index mod 5). Releases the GIL.");

  py::class_<cal::ReliabilityBin>(m, "ReliabilityBin", "One equal-width bin of a reliability diagram (Metrics.bins).")
      .def_readonly("lower", &cal::ReliabilityBin::lower, "the bin's lower edge")
      .def_readonly("upper", &cal::ReliabilityBin::upper, "the bin's upper edge")
      .def_readonly("count", &cal::ReliabilityBin::count, "probabilities in the bin")
      .def_readonly("mean_probability", &cal::ReliabilityBin::mean_probability, "mean predicted p(positive) in the bin")
      .def_readonly("fraction_positive", &cal::ReliabilityBin::fraction_positive, "observed frequency of label 1")
      .def("__repr__", [](const cal::ReliabilityBin& b) {
        return py::str("ReliabilityBin(lower={}, upper={}, count={}, mean_probability={:.4f}, fraction_positive={:.4f})")
            .format(b.lower, b.upper, b.count, b.mean_probability, b.fraction_positive)
            .cast<std::string>();
      });
  py::class_<cal::Metrics>(m, "Metrics", "Calibration and discrimination of probabilities against 0/1 labels "
                                         "(docs/calibration.md defines each).")
      .def_readonly("count", &cal::Metrics::count, "probabilities scored")
      .def_readonly("positives", &cal::Metrics::positives, "labels equal to 1")
      .def_readonly("ece_positive", &cal::Metrics::ece_positive, "equal-width bins over p(positive)")
      .def_readonly("ece_top_label", &cal::Metrics::ece_top_label, "equal-width bins over max(p, 1 - p)")
      .def_readonly("ece_equal_mass", &cal::Metrics::ece_equal_mass, "bins of (nearly) equal count")
      .def_readonly("mce", &cal::Metrics::mce, "maximum calibration error over non-empty bins")
      .def_readonly("brier", &cal::Metrics::brier, "mean (p - y)^2")
      .def_readonly("nll", &cal::Metrics::nll, "mean negative log-likelihood")
      .def_readonly("auc", &cal::Metrics::auc, "ROC AUC (ties count half); NaN with one class")
      .def_readonly("threshold", &cal::Metrics::threshold, "the operating threshold of the four rates")
      .def_readonly("sensitivity", &cal::Metrics::sensitivity, "true positive rate at threshold (NaN when undefined)")
      .def_readonly("specificity", &cal::Metrics::specificity, "true negative rate at threshold")
      .def_readonly("ppv", &cal::Metrics::ppv, "positive predictive value at threshold")
      .def_readonly("npv", &cal::Metrics::npv, "negative predictive value at threshold")
      .def_readonly("bins", &cal::Metrics::bins, "the equal-width ReliabilityBins of ece_positive")
      .def("to_dict", [](const cal::Metrics& r) {
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
      }, "The scalar metrics as a dict (a Python convenience; bins are left out).")
      .def("__repr__", [](const cal::Metrics& r) {
        return py::str("Metrics(count={}, ece_positive={:.4f}, brier={:.4f}, nll={:.4f}, auc={:.4f})")
            .format(r.count, r.ece_positive, r.brier, r.nll, r.auc)
            .cast<std::string>();
      });
  m.def(
      "compute_metrics",
      [](const std::vector<double>& p, const std::vector<int>& y, double threshold, int bins) {
        py::gil_scoped_release release;
        return cal::compute_metrics(p, y, threshold, bins);
      },
      py::arg("probabilities"), py::arg("labels"), py::arg("threshold") = 0.5, py::arg("bins") = 15,
      "Calibration and discrimination metrics (docs/calibration.md defines each). Releases the GIL.");
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
  py::class_<cal::OperatingPoint>(m, "OperatingPoint", "A decision threshold chosen for a target sensitivity.")
      .def_readonly("target_sensitivity", &cal::OperatingPoint::target_sensitivity, "the target")
      .def_readonly("delta", &cal::OperatingPoint::delta, "the guarantee's error probability")
      .def_readonly("threshold_empirical", &cal::OperatingPoint::threshold_empirical,
                    "the highest threshold whose sensitivity on the data is >= target")
      .def_readonly("threshold_guaranteed", &cal::OperatingPoint::threshold_guaranteed,
                    "Learn-then-Test: sensitivity >= target with probability >= 1 - delta")
      .def_readonly("guaranteed", &cal::OperatingPoint::guaranteed, "a threshold passed the test")
      .def_readonly("at_empirical", &cal::OperatingPoint::at_empirical, "Metrics at the empirical threshold")
      .def_readonly("at_guaranteed", &cal::OperatingPoint::at_guaranteed, "Metrics at the guaranteed threshold")
      .def("__repr__", [](const cal::OperatingPoint& o) {
        return py::str("OperatingPoint(target_sensitivity={}, threshold_empirical={}, threshold_guaranteed={}, guaranteed={})")
            .format(o.target_sensitivity, o.threshold_empirical, o.threshold_guaranteed, o.guaranteed)
            .cast<std::string>();
      });
  m.def(
      "sensitivity_operating_point",
      [](const std::vector<double>& p, const std::vector<int>& y, double target, double delta) {
        py::gil_scoped_release release;
        return cal::sensitivity_operating_point(p, y, target, delta);
      },
      py::arg("probabilities"), py::arg("labels"), py::arg("target_sensitivity") = 0.9, py::arg("delta") = 0.05,
      "Thresholds on calibrated probabilities for a target sensitivity: empirical, and guaranteed by Learn-then-Test.");
  py::class_<cal::ConformalThreshold>(m, "ConformalThreshold", "Split-conformal calibration for binary prediction sets.")
      .def_readonly("alpha", &cal::ConformalThreshold::alpha, "the miscoverage level")
      .def_readonly("qhat", &cal::ConformalThreshold::qhat, "a class c is in the set when 1 - p(c) <= qhat")
      .def_readonly("empirical_coverage", &cal::ConformalThreshold::empirical_coverage, "coverage on the fitting data")
      .def_readonly("fraction_both", &cal::ConformalThreshold::fraction_both, "sets holding both classes")
      .def_readonly("fraction_empty", &cal::ConformalThreshold::fraction_empty, "empty sets")
      .def("__repr__", [](const cal::ConformalThreshold& c) {
        return py::str("ConformalThreshold(alpha={}, qhat={}, empirical_coverage={})")
            .format(c.alpha, c.qhat, c.empirical_coverage)
            .cast<std::string>();
      });
  m.def("conformal_threshold", &cal::conformal_threshold, py::arg("probabilities"), py::arg("labels"),
        py::arg("alpha") = 0.1, "qhat for prediction sets that hold the true class with probability >= 1 - alpha.");
  m.def(
      "write_reliability_png",
      [](const Path& path, const cal::Metrics& before, const std::optional<cal::Metrics>& after, const std::string& title) {
        const cal::Metrics a = after.value_or(cal::Metrics{});
        py::gil_scoped_release release;
        cal::write_reliability_png(path.string(), before, a, title);
      },
      py::arg("path"), py::arg("before"), py::arg("after") = py::none(), py::arg("title") = "",
      "Writes a reliability diagram PNG of Metrics (and a second series for `after`). Raises IoError.");

}
