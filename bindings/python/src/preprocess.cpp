// medinfer.preprocess: the Python mirror of medinfer/preprocess.hpp (apply, apply_volume). Specs are
// the manifest's "preprocessing" array as Python data or JSON text; results are float32 arrays that
// own the library's tensor (no copy). The GIL is released while computing.
#include "common.hpp"

#include <optional>

#include <medinfer/image.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/volume.hpp>

#include <array>
#include <cstring>

#include <pybind11/stl.h>

void bind_preprocess(py::module_& m) {
  m.doc() = "Preprocessing specs applied to images and volumes (medinfer/preprocess.hpp).";
  // The file's VOI window, for "from_file" windows: None, or (center, width[, function]).
  auto context_of = [](const py::object& file_window) {
    medinfer::preprocess::Context c;
    if (file_window.is_none()) return c;
    const auto t = file_window.cast<py::tuple>();
    if (t.size() < 2 || t.size() > 3) {
      throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                            "file_window: expected (center, width) or (center, width, function)");
    }
    c.has_file_window = true;
    c.file_window_center = t[0].cast<double>();
    c.file_window_width = t[1].cast<double>();
    if (t.size() == 3) c.file_window_function = t[2].cast<std::string>();
    return c;
  };
  m.def(
      "apply",
      [context_of](const py::object& spec, const ImageArgument& pixels,
                   std::optional<std::array<double, 2>> spacing, const py::object& file_window) {
        const auto parsed = medinfer::preprocess::parse_spec(json_text(spec));
        const auto context = context_of(file_window);
        medinfer::Image image = image_of(pixels, "preprocess.apply");
        if (spacing) image.set_spacing(*spacing);
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply(parsed, image, context);
        }
        return tensor_array(std::move(t));
      },
      py::arg("spec"), py::arg("pixels"), py::arg("spacing") = py::none(), py::arg("file_window") = py::none(),
      "Applies a preprocessing spec (the manifest's 'preprocessing' array: a list of steps, or its JSON text) to "
      "a medinfer.Image or an array (rows, columns) of modality values (or (rows, columns, 3) RGB), borrowed "
      "without a copy when C-contiguous; spacing (x, y) in mm replaces the image's (an array's is 1, 1). Returns "
      "the float32 tensor [1, C, H, W] (an array owning the library's tensor). Releases the GIL while computing.");
  m.def(
      "apply_volume",
      [context_of](const py::object& spec, const VolumeArgument& voxels,
                   std::optional<std::array<double, 3>> spacing, std::optional<std::array<double, 3>> origin,
                   std::optional<std::array<double, 9>> direction, const py::object& file_window, unsigned threads) {
        const auto parsed = medinfer::preprocess::parse_spec(json_text(spec));
        const auto context = context_of(file_window);
        medinfer::Volume volume = volume_of(voxels, "preprocess.apply_volume");
        if (spacing) volume.set_spacing(*spacing);
        if (origin) volume.set_origin(*origin);
        if (direction) volume.set_direction(*direction);
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply_volume(parsed, volume, context, threads);
        }
        return tensor_array(std::move(t));
      },
      py::arg("spec"), py::arg("voxels"), py::arg("spacing") = py::none(), py::arg("origin") = py::none(),
      py::arg("direction") = py::none(), py::arg("file_window") = py::none(), py::arg("threads") = 0,
      "Applies a preprocessing spec to a medinfer.Volume or an array (slices, rows, columns), borrowed without a "
      "copy when C-contiguous; spacing (x, y, z) in mm, origin and direction (row, column, slice cosines) replace "
      "the volume's. Returns the float32 tensor [1, C, D, H, W]. Releases the GIL.");
}
