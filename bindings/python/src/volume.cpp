// medinfer/volume.hpp in Python: Volume, borrowed from a numpy array as Image is (image.cpp), and
// numpy.asarray(volume) a read-only (slices, rows, columns) view of its voxels.
#include "common.hpp"

#include <medinfer/volume.hpp>

#include <pybind11/stl.h>

medinfer::Volume volume_of(const py::handle& voxels, const char* who) {
  if (py::isinstance<medinfer::Volume>(voxels)) return voxels.cast<medinfer::Volume>();
  BorrowedArray a = borrowed_array(voxels, who);
  if (a.shape.size() != 3) {
    throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, std::string(who) +
                                                                     ": expected a 3-D array (slices, rows, columns), got " +
                                                                     std::to_string(a.shape.size()) + " dimensions");
  }
  return medinfer::Volume::borrow(std::move(a.owner), a.data, a.type, static_cast<std::size_t>(a.shape[2]),
                                  static_cast<std::size_t>(a.shape[1]), static_cast<std::size_t>(a.shape[0]));
}

medinfer::Volume volume_of(const VolumeArgument& given, const char* who) {
  if (const auto* volume = std::get_if<medinfer::Volume>(&given)) return *volume;
  return volume_of(std::get<py::array>(given), who);
}

void bind_volume(py::module_& m) {
  using medinfer::Volume;
  py::class_<Volume>(m, "Volume", py::buffer_protocol(),
                     "Slices of rows of voxels with patient geometry (medinfer::Volume). Volume(voxels) borrows a "
                     "C-contiguous (slices, rows, columns) numpy array without a copy, as Image does; "
                     "numpy.asarray(volume) is a read-only view.")
      .def(py::init([](const py::object& voxels, std::array<double, 3> spacing, std::array<double, 3> origin,
                       std::array<double, 9> direction) {
             Volume v = volume_of(voxels, "Volume");
             v.set_spacing(spacing);
             v.set_origin(origin);
             v.set_direction(direction);
             return v;
           }),
           py::arg("voxels"), py::arg("spacing") = std::array<double, 3>{1.0, 1.0, 1.0},
           py::arg("origin") = std::array<double, 3>{0.0, 0.0, 0.0},
           py::arg("direction") = std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1},
           "voxels: (slices, rows, columns); spacing (x, y, z) in mm; origin of the first voxel in patient LPS mm; "
           "direction: row cosines, column cosines, slice direction.")
      .def_buffer([](Volume& v) {
        const auto item = static_cast<py::ssize_t>(medinfer::bytes_per_sample(v.pixel_type()));
        const auto w = static_cast<py::ssize_t>(v.width()), h = static_cast<py::ssize_t>(v.height());
        return py::buffer_info(const_cast<void*>(v.data()), item,
                               buffer_format(v.pixel_type()), 3,
                               {static_cast<py::ssize_t>(v.depth()), h, w}, {h * w * item, w * item, item},
                               /*readonly=*/true);
      })
      .def_property_readonly("pixel_type", &Volume::pixel_type, "the PixelType of each voxel")
      .def_property_readonly("width", &Volume::width, "columns")
      .def_property_readonly("height", &Volume::height, "rows")
      .def_property_readonly("depth", &Volume::depth, "slices")
      .def_property_readonly("borrowed", &Volume::borrowed, "the voxels are a numpy array's memory, not the library's copy")
      .def_property("spacing", &Volume::spacing, &Volume::set_spacing, "(x, y, z) voxel spacing in mm")
      .def_property("origin", &Volume::origin, &Volume::set_origin, "the first voxel's centre, patient LPS mm")
      .def_property("direction", &Volume::direction, &Volume::set_direction,
                    "row cosines, column cosines, slice direction (9 values)")
      .def("slice", &Volume::slice, py::arg("z"), "Slice z as an Image (a copy) with the slice's geometry.")
      .def("__repr__", [](const Volume& v) {
        return py::str("Volume(pixel_type={!r}, width={}, height={}, depth={})")
            .format(medinfer::to_string(v.pixel_type()), v.width(), v.height(), v.depth())
            .cast<std::string>();
      });
}
