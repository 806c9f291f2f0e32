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

/// The tensor as a float32 array sharing its memory (the array keeps the moved-in tensor alive).
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
