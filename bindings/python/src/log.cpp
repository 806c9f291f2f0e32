// medinfer/log.hpp in Python: LogLevel and set_log_handler(handler, min_level). The handler is called
// with (LogLevel, str) from whichever library thread logs, holding the GIL for the call; an exception
// it raises is swallowed (the library's rule: a handler must not throw). The handler is removed when
// the interpreter exits, before the library could call into a finished interpreter.
#include "common.hpp"

#include <medinfer/log.hpp>

#include <string_view>

#include <pybind11/functional.h>

namespace {

void install(const py::object& handler, medinfer::LogLevel level) {
  medinfer::LogHandler fn;
  if (!handler.is_none()) {
    auto held = held_by_library(handler);
    fn = [held](medinfer::LogLevel l, std::string_view message) {
      if (!Py_IsInitialized()) return;
      py::gil_scoped_acquire gil;
      try {
        py::object text = py::reinterpret_steal<py::object>(
            PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace"));
        (*held)(l, text);
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable("medinfer log handler");
      }
    };
  }
  // set_log_handler waits for a running handler call to return; that call may be waiting for the GIL.
  py::gil_scoped_release release;
  medinfer::set_log_handler(std::move(fn), level);
}

}  // namespace

void bind_log(py::module_& m) {
  m.def(
      "set_log_handler", [](const py::object& handler, medinfer::LogLevel level) { install(handler, level); },
      py::arg("handler"), py::arg("min_level") = medinfer::LogLevel::kInfo,
      "Installs handler(level: LogLevel, message: str) for the library's messages at or above min_level "
      "(replacing the previous one); None turns logging off (the default). Called from any thread that uses "
      "medinfer, with the GIL held; exceptions it raises are reported as unraisable and otherwise ignored. "
      "When it returns, the previous handler will not be called again.");
  py::module_::import("atexit").attr("register")(
      py::cpp_function([] { install(py::none(), medinfer::LogLevel::kInfo); }));
}
