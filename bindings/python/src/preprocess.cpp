// medinfer.preprocess: the Python mirror of medinfer/preprocess.hpp (apply, apply_volume). Specs are
// the manifest's "preprocessing" array as Python data or JSON text; results are float32 arrays that
// own the library's tensor (no copy). The GIL is released while computing.
#include "common.hpp"

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
      [context_of](const py::object& spec,
                             py::array_t<float, py::array::c_style | py::array::forcecast> pixels,
                             std::pair<double, double> spacing, const py::object& file_window) {
        if (pixels.ndim() != 2 && !(pixels.ndim() == 3 && pixels.shape(2) == 3)) {
          throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                "preprocess.apply: expected a 2-D array (rows, columns) or an RGB array (rows, columns, 3), got " +
                                    std::to_string(pixels.ndim()) + " dimensions");
        }
        const auto parsed = medinfer::preprocess::parse_spec(json_text(spec));
        const auto context = context_of(file_window);
        medinfer::Image image = medinfer::Image::from_buffer(
            pixels.data(), medinfer::PixelType::kFloat32, static_cast<std::size_t>(pixels.shape(1)),
            static_cast<std::size_t>(pixels.shape(0)), pixels.ndim() == 3 ? 3 : 1);
        image.set_spacing({spacing.first, spacing.second});
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply(parsed, image, context);
        }
        return tensor_array(std::move(t));
      },
      py::arg("spec"), py::arg("pixels"), py::arg("spacing") = std::make_pair(1.0, 1.0),
      py::arg("file_window") = py::none(),
      "Applies a preprocessing spec (the manifest's 'preprocessing' array: a list of steps, or its JSON text) to a 2-D array of "
      "pixels in modality units (or an RGB array (rows, columns, 3)) with spacing (x, y) in mm; returns the "
      "float32 tensor [1, C, H, W]. Releases the GIL while computing.");
  m.def(
      "apply_volume",
      [context_of](const py::object& spec,
                             py::array_t<float, py::array::c_style | py::array::forcecast> voxels,
                             std::array<double, 3> spacing, std::array<double, 3> origin, std::array<double, 9> direction,
                             const py::object& file_window, unsigned threads) {
        if (voxels.ndim() != 3) {
          throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                "preprocess.apply_volume: expected a 3-D array (slices, rows, columns), got " +
                                    std::to_string(voxels.ndim()) + " dimensions");
        }
        const auto parsed = medinfer::preprocess::parse_spec(json_text(spec));
        const auto context = context_of(file_window);
        medinfer::Volume volume(medinfer::PixelType::kFloat32, static_cast<std::size_t>(voxels.shape(2)),
                                static_cast<std::size_t>(voxels.shape(1)), static_cast<std::size_t>(voxels.shape(0)));
        std::memcpy(volume.mutable_data(), voxels.data(), volume.size_bytes());
        volume.set_spacing(spacing);
        volume.set_origin(origin);
        volume.set_direction(direction);
        medinfer::Tensor t;
        {
          py::gil_scoped_release release;
          t = medinfer::preprocess::apply_volume(parsed, volume, context, threads);
        }
        return tensor_array(std::move(t));
      },
      py::arg("spec"), py::arg("voxels"), py::arg("spacing") = std::array<double, 3>{1.0, 1.0, 1.0},
      py::arg("origin") = std::array<double, 3>{0.0, 0.0, 0.0},
      py::arg("direction") = std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1}, py::arg("file_window") = py::none(),
      py::arg("threads") = 0,
      "Applies a preprocessing spec to a volume (slices, rows, columns) with spacing (x, y, z) in mm, origin and "
      "direction (row, column, slice cosines); returns the float32 tensor [1, C, D, H, W].");

}
