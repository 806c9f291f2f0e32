// medinfer/finding.hpp in Python: Finding (Result.findings, risk.assess), picklable; Rule is an enum
// (enums.hpp).
#include "common.hpp"

#include <medinfer/finding.hpp>

#include <pybind11/stl.h>

using medinfer::Finding;

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

std::string bool_text(bool b) { return b ? "True" : "False"; }

void bind_finding(py::module_& m) {
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
}
