// What the binding files share: the exception objects of medinfer::Error, paths (str or os.PathLike),
// JSON-or-dict arguments, and tensors as numpy arrays that own the library's memory.
#pragma once

#include <medinfer/error.hpp>
#include <medinfer/tensor.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "enums.hpp"

namespace py = pybind11;
using Path = std::filesystem::path;

/// The Python exception object for an Error (its class by code; .code the code's name; .filename for
/// NotFoundError when the message names one). Needs the GIL.
py::object exception_object(const medinfer::Error& e);

/// Paths as the library's strings.
std::vector<std::string> strings(const std::vector<Path>& paths);

/// A JSON argument given as text (str) or as Python data (dict / list / numbers): the JSON text.
std::string json_text(const py::object& value);

/// json.loads(text).
py::object json_loads(const std::string& text);

/// An array over memory that `value` (moved into the array's owner) holds, in C order: the array keeps
/// the owner alive, nothing is copied. `data_of` gives the owner's first byte.
template <class Owner>
py::array owned_array(Owner&& value, void* (*data_of)(Owner&), const py::dtype& dtype, std::vector<py::ssize_t> shape) {
  auto* owner = new Owner(std::move(value));
  py::capsule keep(owner, [](void* p) { delete static_cast<Owner*>(p); });
  return py::array(dtype, std::move(shape), data_of(*owner), keep);
}

/// The tensor as a float32 array sharing its memory (owned_array over the moved-in tensor).
py::array_t<float> tensor_array(medinfer::Tensor&& t);

// One registration function per public header's mirror (the files of bindings/python/src/).
void bind_errors(py::module_& m);
void bind_dicom(py::module_& m);
void bind_preprocess(py::module_& m);
void bind_calibration(py::module_& m);
void bind_risk(py::module_& m);
void bind_audit(py::module_& m);
void bind_package(py::module_& m);
/// The option structs and ModelIdentity, which other areas' signatures name (bound first: module.cpp).
void bind_named_types(py::module_& m);
void bind_pipeline(py::module_& m);
