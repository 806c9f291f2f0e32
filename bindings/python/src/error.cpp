// The exception classes of medinfer/error.hpp: MedinferError and one subclass per ErrorCode, each also
// a subclass of the fitting built-in (InvalidDicomError is a ValueError, NotFoundError a
// FileNotFoundError with errno and filename, ...), and the translation of medinfer::Error to them.
#include "common.hpp"

#include <medinfer/error.hpp>

#include <cerrno>
#include <map>


namespace {

struct ExceptionClasses {
  py::object base;
  std::map<medinfer::ErrorCode, py::object> by_code;
};

ExceptionClasses& exceptions() {
  static ExceptionClasses* e = new ExceptionClasses();  // leaked on purpose: outlives the interpreter's teardown order
  return *e;
}

}  // namespace

py::object exception_object(const medinfer::Error& e) {
  auto& ex = exceptions();
  auto it = ex.by_code.find(e.code());
  py::object cls = it == ex.by_code.end() ? ex.base : it->second;
  // Messages quote file values and paths: bytes that are not UTF-8 are replaced, never raised.
  const std::string what = e.what();
  py::object message = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(what.data(), static_cast<Py_ssize_t>(what.size()), "replace"));
  py::object instance = cls(message);
  instance.attr("code") = py::cast(e.code());  // an ErrorCode (a StrEnum: equal to "kNotFound", ...)
  if (e.code() == medinfer::ErrorCode::kNotFound) {
    // The library's form is "PATH: no such file ..." (or "... directory"): FileNotFoundError's
    // errno and filename, as open() would set them.
    instance.attr("errno") = ENOENT;
    const std::size_t at = what.find(": no such ");
    if (at != std::string::npos && at > 0) {
      instance.attr("filename") = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeFSDefaultAndSize(what.data(), static_cast<Py_ssize_t>(at)));
    }
  }
  return instance;
}

// medinfer.InvalidDicomError(MedinferError, ValueError) and so on: catchable by the built-in too.
void bind_error(py::module_& m) {
  auto& ex = exceptions();
  ex.base = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
      "medinfer.MedinferError", "Base class of every medinfer error; .code is the ErrorCode name.", PyExc_RuntimeError,
      nullptr));
  m.attr("MedinferError") = ex.base;
  const struct {
    medinfer::ErrorCode code;
    const char* name;
    PyObject* builtin;
    const char* doc;
  } table[] = {
      {medinfer::ErrorCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError, "a value, manifest field or request is malformed"},
      {medinfer::ErrorCode::kInvalidDicom, "InvalidDicomError", PyExc_ValueError, "the input is not DICOM, or is truncated or inconsistent DICOM"},
      {medinfer::ErrorCode::kUnsupported, "UnsupportedError", PyExc_NotImplementedError, "valid input this build cannot handle (transfer syntax, device, ...)"},
      {medinfer::ErrorCode::kResourceLimit, "ResourceLimitError", PyExc_MemoryError, "the input exceeds a configured limit"},
      {medinfer::ErrorCode::kModelIntegrity, "ModelIntegrityError", nullptr, "a model package file is missing, unlisted, modified or escapes the package"},
      {medinfer::ErrorCode::kIo, "IoError", PyExc_OSError, "reading or writing a file failed"},
      {medinfer::ErrorCode::kNotFound, "NotFoundError", PyExc_FileNotFoundError, "a file or directory does not exist (errno ENOENT; filename: the path)"},
      {medinfer::ErrorCode::kAuditFailed, "AuditFailedError", nullptr, "an audit record could not be written; the result was not released"},
      {medinfer::ErrorCode::kInternal, "InternalError", nullptr, "a dependency failed unexpectedly or the model produced a non-finite value"},
      {medinfer::ErrorCode::kOverloaded, "OverloadedError", nullptr, "a bounded queue (the dynamic batcher's) is full: retry later"},
      {medinfer::ErrorCode::kCancelled, "CancelledError", nullptr, "the run was cancelled before this input was started"},
  };
  for (const auto& t : table) {
    py::tuple bases = t.builtin ? py::make_tuple(ex.base, py::handle(t.builtin)) : py::make_tuple(ex.base);
    const std::string qualified = std::string("medinfer.") + t.name;
    auto cls = py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc(qualified.c_str(), (std::string(medinfer::to_string(t.code)) + ": " + t.doc).c_str(),
                                  bases.ptr(), nullptr));
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
