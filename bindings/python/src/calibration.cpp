// medinfer.calibration: the Python mirror of medinfer/calibration.hpp (Calibrator, Metrics,
// compute_metrics, bootstrap_intervals). The GIL is released while fitting and computing.
#include "common.hpp"

#include <medinfer/calibration.hpp>

#include <map>

#include <pybind11/stl.h>

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
      .def_property_readonly("values", &cal::Calibrator::values, "isotonic / histogram: the probability at each knot");

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

}
