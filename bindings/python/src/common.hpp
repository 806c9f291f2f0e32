// What the binding files share: the exception objects of medinfer::Error, paths (str or os.PathLike),
// JSON-or-dict arguments, tensors as numpy arrays that own the library's memory, and numpy arrays
// borrowed as Images and Volumes.
#pragma once

#include <medinfer/error.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/image.hpp>
#include <medinfer/tensor.hpp>
#include <medinfer/volume.hpp>

#include <filesystem>
#include <memory>
#include <variant>
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

/// The tensor as a float32 array sharing its memory (owned_array over the moved-in tensor). tensor.cpp
py::array_t<float> tensor_array(medinfer::Tensor&& t);
/// A Tensor of an array's values (float32, its shape): copied once into the Tensor's own vector.
medinfer::Tensor tensor_of(const py::handle& values, const char* who);

/// A Python object the library holds from C++ (an array it borrows, a callable it calls back): the
/// reference is dropped under the GIL from whichever thread releases the last copy, and left alone once
/// the interpreter is finalizing. common.cpp
std::shared_ptr<py::object> held_by_library(py::object object);

/// A numpy array's memory as the library may borrow it: C-contiguous, a PixelType's dtype (else copied
/// once: to float32 for a dtype the library lacks), `owner` holding the array (released under the GIL).
struct BorrowedArray {
  std::shared_ptr<const void> owner;
  const void* data = nullptr;
  medinfer::PixelType type = medinfer::PixelType::kFloat32;
  std::vector<py::ssize_t> shape;
};
/// image.cpp; `who` names the call in errors.
BorrowedArray borrowed_array(const py::handle& values, const char* who);
/// A medinfer.Image (its buffer shared), or an array (rows, columns[, 3]) borrowed without a copy.
medinfer::Image image_of(const py::handle& pixels, const char* who);
/// A medinfer.Volume, or an array (slices, rows, columns) borrowed without a copy. volume.cpp
medinfer::Volume volume_of(const py::handle& voxels, const char* who);
/// What a signature that takes pixels declares (so stubs and help() say "Image | ndarray"), and the
/// one conversion of it: the Image as given (its buffer shared), or the array borrowed by image_of.
using ImageArgument = std::variant<medinfer::Image, py::array>;
using VolumeArgument = std::variant<medinfer::Volume, py::array>;
medinfer::Image image_of(const ImageArgument& given, const char* who);
medinfer::Volume volume_of(const VolumeArgument& given, const char* who);
/// The buffer-protocol format character of a PixelType.
const char* buffer_format(medinfer::PixelType type);
/// The numpy dtype of a PixelType.
py::dtype dtype_of(medinfer::PixelType type);

// One registration function per public header's mirror: bindings/python/src/<header>.cpp binds
// include/medinfer/<header>.hpp (module.cpp calls them in the order their types are named).
void bind_error(py::module_& m);
void bind_build_info(py::module_& m);
void bind_image(py::module_& m);
void bind_volume(py::module_& m);
void bind_log(py::module_& m);
void bind_model_identity(py::module_& m);
/// PackageOptions at the top (PipelineOptions.package), ModelPackage and verify_package in `package`.
void bind_model_package(py::module_& m, py::module_& package);
void bind_package(py::module_& m);
void bind_engine(py::module_& m);
/// ReadOptions in `dicom`, also named at the top (PipelineOptions.read).
void bind_dicom(py::module_& m, py::module_& dicom);
void bind_series(py::module_& dicom);
void bind_deidentify(py::module_& dicom);
void bind_preprocess(py::module_& m);
void bind_calibration(py::module_& m);
void bind_finding(py::module_& m);
void bind_risk(py::module_& m);
void bind_audit(py::module_& m);
void bind_pipeline(py::module_& m);
void bind_report(py::module_& report);

/// A Finding as a tuple of its fields (enums by their library names) and back: pickling. finding.cpp
py::tuple finding_state(const medinfer::Finding& f);
void set_finding(medinfer::Finding& f, const py::tuple& t);
/// "True" / "False", for reprs.
std::string bool_text(bool b);

/// The files a report's `sources` name: the paths as given, or a single directory's DICOM files (as
/// predict_series / predict_study scan it). report.cpp
std::vector<std::string> sources_of(const std::vector<Path>& paths);
