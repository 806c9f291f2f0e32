// Preprocessing declared as data: the model package's ordered steps, applied to an Image.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/image.hpp>
#include <medinfer/tensor.hpp>

#include <string>
#include <variant>
#include <vector>

namespace medinfer::preprocess {

/// Maps [center - width/2, center + width/2] linearly onto [0, 1] and clips outside it.
struct WindowStep {
  double center = 0.0;
  double width = 1.0;  ///< > 0
};

enum class Interpolation { kArea, kLinear, kNearest, kCubic };

/// Resizes (stretching) to width x height.
struct ResizeStep {
  int width = 0;   ///< 1..16384
  int height = 0;  ///< 1..16384
  Interpolation interpolation = Interpolation::kArea;
};

/// x -> (x - mean) / std.
struct NormalizeStep {
  double mean = 0.0;
  double std = 1.0;  ///< > 0
};

using Step = std::variant<WindowStep, ResizeStep, NormalizeStep>;

/// An ordered list of steps. The result is a float32 tensor laid out N=1, C, H, W.
struct MEDINFER_API Spec {
  std::vector<Step> steps;

  /// Throws Error(kInvalidArgument) naming the step index and field of the first invalid value.
  void validate() const;
};

/// Parses the manifest's "preprocessing" array (JSON text). Each element is an object with "step"
/// ("window" | "resize" | "normalize") and that step's fields. Throws Error(kInvalidArgument) naming
/// the step index and field for unknown steps, missing fields, wrong types or out-of-range values.
MEDINFER_API Spec parse_spec(const std::string& json_text);

/// Applies `spec` to a single-channel image of any pixel type. Throws Error(kInvalidArgument) for an
/// empty or multi-channel image. Thread-safe.
MEDINFER_API Tensor apply(const Spec& spec, const Image& image);

}  // namespace medinfer::preprocess
