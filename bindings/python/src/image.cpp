// medinfer/image.hpp in Python: PixelType and Image. An Image made from a numpy array borrows the
// array's memory (Image::borrow, no copy) when the array is C-contiguous with a pixel type the library
// has (uint8 ... float64, native byte order); any other array is copied once (numpy.ascontiguousarray,
// to the nearest type that holds its values exactly; complex, string and object arrays are refused). numpy.asarray(image) is a read-only view of the pixels
// (the buffer protocol: no copy either way).
#include "common.hpp"

#include <medinfer/image.hpp>

#include <optional>

#include <pybind11/stl.h>

namespace {

std::optional<medinfer::PixelType> pixel_type_of(const py::dtype& d) {
  using medinfer::PixelType;
  if (!d.attr("isnative").cast<bool>()) return std::nullopt;
  const char kind = d.kind();
  const auto size = d.itemsize();
  if (kind == 'u') {
    if (size == 1) return PixelType::kUInt8;
    if (size == 2) return PixelType::kUInt16;
    if (size == 4) return PixelType::kUInt32;
  } else if (kind == 'i') {
    if (size == 1) return PixelType::kInt8;
    if (size == 2) return PixelType::kInt16;
    if (size == 4) return PixelType::kInt32;
  } else if (kind == 'f') {
    if (size == 4) return PixelType::kFloat32;
    if (size == 8) return PixelType::kFloat64;
  }
  return std::nullopt;
}

}  // namespace

const char* buffer_format(medinfer::PixelType t) {
  using medinfer::PixelType;
  switch (t) {
    case PixelType::kUInt8: return "B";
    case PixelType::kInt8: return "b";
    case PixelType::kUInt16: return "H";
    case PixelType::kInt16: return "h";
    case PixelType::kUInt32: return "I";
    case PixelType::kInt32: return "i";
    case PixelType::kFloat32: return "f";
    case PixelType::kFloat64: return "d";
  }
  return "B";
}

BorrowedArray borrowed_array(const py::handle& values, const char* who) {
  py::array a = py::array::ensure(values);
  if (!a) throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, std::string(who) + ": expected an array of pixel values");
  std::optional<medinfer::PixelType> type = pixel_type_of(a.dtype());
  if (!type) {
    // The one copy, to the nearest type the library has that holds every value exactly: bool -> uint8,
    // 64-bit integers -> float64 (exact below 2^53), float16 -> float32, another byte order -> native.
    // Anything else (complex, strings, objects, dates) has no pixel meaning: refused, never cast.
    const py::dtype d = a.dtype();
    const char kind = d.kind();
    const std::string name = py::str(static_cast<const py::handle&>(d)).cast<std::string>();
    std::string target;
    if (kind == 'b') {
      target = "uint8";
    } else if ((kind == 'i' || kind == 'u') && d.itemsize() == 8) {
      target = "float64";
    } else if (kind == 'f' && d.itemsize() == 2) {
      target = "float32";
    } else if (kind == 'i' || kind == 'u' || kind == 'f') {
      target = py::str(d.attr("newbyteorder")("=")).cast<std::string>();
    } else {
      throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                            std::string(who) + ": pixels of dtype " + name + " have no pixel type (use integers or floats)");
    }
    a = py::module_::import("numpy").attr("ascontiguousarray")(a, py::arg("dtype") = target);
    type = pixel_type_of(a.dtype());
    if (!type) {
      throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                            std::string(who) + ": pixels of dtype " + name + " have no pixel type");
    }
  } else if (!(a.flags() & py::array::c_style)) {
    a = py::module_::import("numpy").attr("ascontiguousarray")(a);  // the one copy: strided memory
  }
  BorrowedArray out;
  out.type = *type;
  out.data = a.data();
  out.shape.assign(a.shape(), a.shape() + a.ndim());
  out.owner = held_by_library(std::move(a));  // kept for as long as an Image uses it
  return out;
}

medinfer::Image image_of(const py::handle& pixels, const char* who) {
  if (py::isinstance<medinfer::Image>(pixels)) return pixels.cast<medinfer::Image>();  // shares its buffer
  BorrowedArray a = borrowed_array(pixels, who);
  if (a.shape.size() != 2 && !(a.shape.size() == 3 && a.shape[2] == 3)) {
    throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                          std::string(who) + ": expected (rows, columns) or (rows, columns, 3), got " +
                              std::to_string(a.shape.size()) + " dimensions");
  }
  return medinfer::Image::borrow(std::move(a.owner), a.data, a.type, static_cast<std::size_t>(a.shape[1]),
                                 static_cast<std::size_t>(a.shape[0]), a.shape.size() == 3 ? 3 : 1);
}

medinfer::Image image_of(const ImageArgument& given, const char* who) {
  if (const auto* image = std::get_if<medinfer::Image>(&given)) return *image;
  return image_of(std::get<py::array>(given), who);
}

py::dtype dtype_of(medinfer::PixelType type) { return py::dtype(medinfer::to_string(type)); }

void bind_image(py::module_& m) {
  using medinfer::Image;
  py::class_<Image>(m, "Image", py::buffer_protocol(),
                    "A 2D image with its pixel type and patient geometry (medinfer::Image). Image(pixels) borrows "
                    "a C-contiguous numpy array of uint8/int8/uint16/int16/uint32/int32/float32/float64 without a "
                    "copy (the image keeps the array alive; do not write to the array while a call uses it) and "
                    "copies any other array once (bool -> uint8, int64 -> float64, float16 -> float32, another "
                    "byte order -> native; complex, string or object pixels raise InvalidArgumentError). numpy.asarray(image) is a read-only view of its pixels.")
      .def(py::init([](const py::object& pixels, std::array<double, 2> spacing, std::array<double, 3> origin,
                       std::array<double, 9> direction) {
             Image image = image_of(pixels, "Image");
             image.set_spacing(spacing);
             image.set_origin(origin);
             image.set_direction(direction);
             return image;
           }),
           py::arg("pixels"), py::arg("spacing") = std::array<double, 2>{1.0, 1.0},
           py::arg("origin") = std::array<double, 3>{0.0, 0.0, 0.0},
           py::arg("direction") = std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1},
           "pixels: (rows, columns) or (rows, columns, 3) for RGB; spacing (x, y) in mm; origin of the first pixel "
           "in patient LPS mm; direction: row cosines, column cosines, their cross product.")
      .def_buffer([](Image& i) {
        const auto item = static_cast<py::ssize_t>(medinfer::bytes_per_sample(i.pixel_type()));
        const auto w = static_cast<py::ssize_t>(i.width()), c = static_cast<py::ssize_t>(i.channels());
        std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(i.height()), w};
        std::vector<py::ssize_t> strides = {w * c * item, c * item};
        if (c > 1) {
          shape.push_back(c);
          strides.push_back(item);
        }
        return py::buffer_info(const_cast<void*>(i.data()), item, buffer_format(i.pixel_type()),
                               static_cast<py::ssize_t>(shape.size()), shape, strides, /*readonly=*/true);
      })
      .def_property_readonly("pixel_type", &Image::pixel_type, "the PixelType of each sample")
      .def_property_readonly("width", &Image::width, "columns")
      .def_property_readonly("height", &Image::height, "rows")
      .def_property_readonly("channels", &Image::channels, "samples per pixel (1, or 3 for RGB)")
      .def_property_readonly("size_bytes", &Image::size_bytes, "bytes of pixel data")
      .def_property_readonly("borrowed", &Image::borrowed,
                             "the pixels are memory the library borrowed (a numpy array's), not its own copy")
      .def_property("spacing", &Image::spacing, &Image::set_spacing, "(x, y) pixel spacing in mm (finite, > 0)")
      .def_property("origin", &Image::origin, &Image::set_origin, "the first pixel's centre, patient LPS mm")
      .def_property("direction", &Image::direction, &Image::set_direction,
                    "row cosines, column cosines, slice normal (9 values)")
      .def("__repr__", [](const Image& i) {
        return py::str("Image(pixel_type={!r}, width={}, height={}, channels={}, spacing=({}, {}))")
            .format(medinfer::to_string(i.pixel_type()), i.width(), i.height(), i.channels(), i.spacing()[0],
                    i.spacing()[1])
            .cast<std::string>();
      });
  m.def("bytes_per_sample", &medinfer::bytes_per_sample, py::arg("type"), "Size of one sample of a PixelType in bytes.");
}
