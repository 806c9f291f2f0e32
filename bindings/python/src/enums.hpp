// The library's enums as Python enum.StrEnum classes (medinfer.Rule, medinfer.dicom.HeaderWarningKind,
// ...): each member's value is the name the library writes in JSON and audit records (to_string), so a
// member equals that string, and it converts both ways at the API (a member or its string is accepted).
// The classes are made by register_enum (enums.cpp) when the module loads.
#pragma once

#include <medinfer/calibration.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>
#include <medinfer/audit.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/image.hpp>
#include <medinfer/log.hpp>
#include <medinfer/model_identity.hpp>
#include <medinfer/series.hpp>

#include <cctype>
#include <string>

#include <pybind11/pybind11.h>

namespace medinfer_python {

/// The enumerators [first, last] of E, by their library names.
template <class E>
struct EnumRange;
template <> struct EnumRange<medinfer::Rule> { static constexpr int first = 0, last = static_cast<int>(medinfer::Rule::kInputConstant); };
template <> struct EnumRange<medinfer::Arm> { static constexpr int first = 0, last = static_cast<int>(medinfer::Arm::kCandidate); };
template <> struct EnumRange<medinfer::Task> { static constexpr int first = 0, last = static_cast<int>(medinfer::Task::kMultiClass); };
template <> struct EnumRange<medinfer::ErrorCode> {
  static constexpr int first = static_cast<int>(medinfer::ErrorCode::kInvalidArgument);
  static constexpr int last = static_cast<int>(medinfer::ErrorCode::kCancelled);
};
template <> struct EnumRange<medinfer::calibration::Method> {
  static constexpr int first = 0, last = static_cast<int>(medinfer::calibration::Method::kBeta);
};
template <> struct EnumRange<medinfer::dicom::HeaderWarningKind> {
  static constexpr int first = 0, last = static_cast<int>(medinfer::dicom::HeaderWarningKind::kCharacterSet);
};
template <> struct EnumRange<medinfer::dicom::SeriesWarningKind> {
  static constexpr int first = 0, last = static_cast<int>(medinfer::dicom::SeriesWarningKind::kTiltedGantry);
};

template <> struct EnumRange<medinfer::PixelType> { static constexpr int first = 0, last = static_cast<int>(medinfer::PixelType::kFloat64); };
template <> struct EnumRange<medinfer::LogLevel> { static constexpr int first = 0, last = static_cast<int>(medinfer::LogLevel::kError); };
template <> struct EnumRange<medinfer::audit::EventType> {
  static constexpr int first = 0, last = static_cast<int>(medinfer::audit::EventType::kDicomTransfer);
};
template <> struct EnumRange<medinfer::audit::Outcome> { static constexpr int first = 0, last = static_cast<int>(medinfer::audit::Outcome::kError); };
template <> struct EnumRange<medinfer::audit::Durability> {
  static constexpr int first = 0, last = static_cast<int>(medinfer::audit::Durability::kBuffered);
};

/// The Python class of E (set by register_enum; a leaked reference: it outlives interpreter teardown).
template <class E>
pybind11::handle& enum_class() {
  static pybind11::handle cls;
  return cls;
}

/// Makes the StrEnum for E in module `m` as `name`.
template <class E>
void register_enum(pybind11::module_& m, const char* name, const char* doc) {
  namespace py = pybind11;
  py::list members;
  for (int i = EnumRange<E>::first; i <= EnumRange<E>::last; ++i) {
    const std::string value = to_string(static_cast<E>(i));
    std::string key;
    const std::string base = value.empty() ? "none" : (value.size() > 1 && value[0] == 'k' && std::isupper(value[1]) ? value.substr(1) : value);
    for (std::size_t c = 0; c < base.size(); ++c) {
      const char ch = base[c];
      if (std::isupper(static_cast<unsigned char>(ch)) && c > 0 && !key.empty() && key.back() != '_') key += '_';
      key += std::isalnum(static_cast<unsigned char>(ch)) ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : '_';
    }
    members.append(py::make_tuple(key, value));
  }
  py::object str_enum = py::module_::import("enum").attr("StrEnum");
  py::object cls = str_enum(name, members, py::arg("module") = m.attr("__name__"));
  cls.attr("__doc__") = doc;
  m.attr(name) = cls;
  enum_class<E>() = cls.release();
}

/// E from a member of its class or its string; false for anything else.
template <class E>
bool enum_from(pybind11::handle src, E& out) {
  namespace py = pybind11;
  if (!py::isinstance<py::str>(src)) return false;
  const std::string text = py::str(src).cast<std::string>();
  for (int i = EnumRange<E>::first; i <= EnumRange<E>::last; ++i) {
    if (text == to_string(static_cast<E>(i))) {
      out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace medinfer_python

#define MEDINFER_PYTHON_STR_ENUM(E, PYNAME)                                                           \
  namespace pybind11::detail {                                                                        \
  template <>                                                                                         \
  struct type_caster<E> {                                                                             \
    PYBIND11_TYPE_CASTER(E, const_name(PYNAME));                                                      \
    bool load(handle src, bool) { return medinfer_python::enum_from<E>(src, value); }                \
    static handle cast(E v, return_value_policy, handle) {                                            \
      return medinfer_python::enum_class<E>()(std::string(to_string(v))).release();                   \
    }                                                                                                 \
  };                                                                                                  \
  }

MEDINFER_PYTHON_STR_ENUM(medinfer::Rule, "medinfer.Rule")
MEDINFER_PYTHON_STR_ENUM(medinfer::Arm, "medinfer.Arm")
MEDINFER_PYTHON_STR_ENUM(medinfer::Task, "medinfer.Task")
MEDINFER_PYTHON_STR_ENUM(medinfer::ErrorCode, "medinfer.ErrorCode")
MEDINFER_PYTHON_STR_ENUM(medinfer::calibration::Method, "medinfer.calibration.Method")
MEDINFER_PYTHON_STR_ENUM(medinfer::dicom::HeaderWarningKind, "medinfer.dicom.HeaderWarningKind")
MEDINFER_PYTHON_STR_ENUM(medinfer::dicom::SeriesWarningKind, "medinfer.dicom.SeriesWarningKind")
MEDINFER_PYTHON_STR_ENUM(medinfer::PixelType, "medinfer.PixelType")
MEDINFER_PYTHON_STR_ENUM(medinfer::LogLevel, "medinfer.LogLevel")
MEDINFER_PYTHON_STR_ENUM(medinfer::audit::EventType, "medinfer.audit.EventType")
MEDINFER_PYTHON_STR_ENUM(medinfer::audit::Outcome, "medinfer.audit.Outcome")
MEDINFER_PYTHON_STR_ENUM(medinfer::audit::Durability, "medinfer.audit.Durability")
