// What the binding files share (common.hpp): paths as strings and JSON given as text or Python data.
#include "common.hpp"

std::vector<std::string> strings(const std::vector<Path>& paths) {
  std::vector<std::string> out;
  out.reserve(paths.size());
  for (const Path& p : paths) out.push_back(p.string());
  return out;
}

std::string json_text(const py::object& value) {
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  return py::module_::import("json").attr("dumps")(value).cast<std::string>();
}

py::object json_loads(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

std::shared_ptr<py::object> held_by_library(py::object object) {
  return std::shared_ptr<py::object>(new py::object(std::move(object)), [](py::object* o) {
    if (!Py_IsInitialized()) {
      o->release();  // the interpreter is gone: nothing to give the reference back to
      delete o;
      return;
    }
    py::gil_scoped_acquire gil;
    delete o;
  });
}
