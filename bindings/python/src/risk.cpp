// medinfer.risk: the Python mirror of medinfer/risk.hpp: a Policy parsed from the manifest's "risk"
// object (Python data or JSON text) and assess(policy, probability[, facts]) -> Finding.
#include "common.hpp"

#include <medinfer/risk.hpp>

#include <pybind11/stl.h>

namespace risk = medinfer::risk;

void bind_risk(py::module_& m) {
  m.doc() = "Risk policies: tiers, escalation, confidence, quality gate (medinfer/risk.hpp).";
  py::class_<risk::Tier>(m, "Tier", "One tier of a Policy: its name and lowest probability.")
      .def_readonly("name", &risk::Tier::name, "the tier's name")
      .def_readonly("min_probability", &risk::Tier::min_probability, "the lowest probability in the tier")
      .def("__repr__", [](const risk::Tier& t) {
        return py::str("Tier(name={!r}, min_probability={})").format(t.name, t.min_probability).cast<std::string>();
      });
  py::class_<risk::InputFacts>(m, "InputFacts", "What the quality gate looks at (empty strings: unknown).")
      .def(py::init<>())
      .def_readwrite("modality", &risk::InputFacts::modality, "e.g. 'CT' ('' unknown)")
      .def_readwrite("body_part", &risk::InputFacts::body_part, "BodyPartExamined ('' unknown)")
      .def_readwrite("photometric", &risk::InputFacts::photometric, "e.g. 'MONOCHROME2'")
      .def_readwrite("spacing_x_mm", &risk::InputFacts::spacing_x_mm, "column spacing in mm")
      .def_readwrite("spacing_y_mm", &risk::InputFacts::spacing_y_mm, "row spacing in mm")
      .def_readwrite("rows", &risk::InputFacts::rows, "image rows")
      .def_readwrite("columns", &risk::InputFacts::columns, "image columns")
      .def_readwrite("constant", &risk::InputFacts::constant, "the model's input is constant after preprocessing")
      .def_readwrite("spacing_known", &risk::InputFacts::spacing_known, "the image has a valid pixel spacing");
  py::class_<risk::Policy>(m, "Policy", "A validated risk policy (parse_policy).")
      .def_readonly("tiers", &risk::Policy::tiers, "the tiers, ascending")
      .def_readonly("escalation_threshold", &risk::Policy::escalation_threshold, "a probability at or above this escalates")
      .def_readonly("min_confidence", &risk::Policy::min_confidence, "below this confidence the result is indeterminate")
      .def("__repr__", [](const risk::Policy& p) {
        return py::str("Policy({} tiers, escalation_threshold={}, min_confidence={})")
            .format(p.tiers.size(), p.escalation_threshold, p.min_confidence)
            .cast<std::string>();
      });
  m.def(
      "parse_policy", [](const py::object& spec) { return risk::parse_policy(json_text(spec)); }, py::arg("spec"),
      "Parses and validates the manifest's 'risk' object (a dict or its JSON text). Raises InvalidArgumentError "
      "naming the field.");
  m.def(
      "assess", [](const risk::Policy& p, double probability) { return risk::assess(p, probability); },
      py::arg("policy"), py::arg("probability"),
      "The policy's verdict on one calibrated probability: a Finding (tier, escalate, confidence, "
      "indeterminate, rule). Raises InvalidArgumentError outside [0, 1].");
  m.def(
      "assess",
      [](const risk::Policy& p, double probability, const risk::InputFacts& facts) {
        return risk::assess(p, probability, facts);
      },
      py::arg("policy"), py::arg("probability"), py::arg("facts"),
      "The verdict with the quality gate first, then a constant input, then the probability (the library's "
      "one order).");
}
