// Preprocessing declared as data: the model package's ordered steps, applied to an Image.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/image.hpp>
#include <medinfer/tensor.hpp>

#include <string>
#include <variant>
#include <vector>

namespace medinfer::preprocess {

/// "window": maps [center − width/2, center + width/2] linearly onto [0, 1] and clips outside it.
/// With `use_percentiles`, the bounds are the image's own lower/upper percentiles (numpy's linear
/// definition) instead: {"step": "window", "percentiles": [1, 99]}. With `from_file`, the file's own
/// first VOI window (WindowCenter/WindowWidth, LINEAR) is used when it has one, else center/width:
/// {"step": "window", "from_file": true, "center": 40, "width": 400}.
struct WindowStep {
  double center = 0.0;
  double width = 1.0;  ///< > 0
  bool use_percentiles = false;
  double lower_percentile = 1.0, upper_percentile = 99.0;  ///< 0 <= lower < upper <= 100
  bool from_file = false;
};

/// What a step may take from the input's header: the file's first VOI window, when present.
struct Context {
  bool has_file_window = false;
  double file_window_center = 0.0, file_window_width = 1.0;
};

/// "clip": values clipped to [min, max].
struct ClipStep {
  double min = 0.0, max = 1.0;  ///< min < max
};

enum class Interpolation { kArea, kLinear, kNearest, kCubic };

/// "resize" to width x height. mode "stretch" (default), or "keep_aspect_pad": scaled by
/// min(width/w, height/h) (sizes rounded, at least 1), then centred and padded with `pad_value`.
struct ResizeStep {
  int width = 0;   ///< 1..16384
  int height = 0;  ///< 1..16384
  Interpolation interpolation = Interpolation::kArea;
  bool keep_aspect = false;
  double pad_value = 0.0;
};

/// "resample" to a pixel spacing in mm (x, y) using the image's own spacing: new size =
/// round(size × old spacing / new spacing). With `antialias` (default), shrinking uses area
/// interpolation (a box filter), so fine detail averages instead of aliasing.
struct ResampleStep {
  double spacing_x = 1.0, spacing_y = 1.0;  ///< > 0
  Interpolation interpolation = Interpolation::kLinear;
  bool antialias = true;
};

/// "crop_or_pad": centred crop or pad to width x height (offsets floor((old − new) / 2)), padding
/// with `pad_value`. Bit-exact.
struct CropOrPadStep {
  int width = 0, height = 0;  ///< 1..16384
  double pad_value = 0.0;
};

/// "flip": "axis": "horizontal" (left-right) or "vertical" (up-down). Bit-exact.
struct FlipStep {
  bool horizontal = true;
};

/// "normalize": mode "fixed" (default): (x − mean) / std; "zscore": the image's own mean and
/// population std; "minmax": (x − min) / (max − min). A constant image normalises to zeros.
struct NormalizeStep {
  enum class Mode { kFixed, kZScore, kMinMax };
  double mean = 0.0;
  double std = 1.0;  ///< > 0 (fixed)
  Mode mode = Mode::kFixed;
};

/// "channels": {"replicate": N}: the single channel copied to N channels (1..16), e.g. 3 for models
/// pretrained on RGB. Applies to the output, wherever it appears in the list.
struct ChannelsStep {
  int replicate = 3;
};

using Step = std::variant<WindowStep, ResizeStep, NormalizeStep, ClipStep, ResampleStep, CropOrPadStep, FlipStep,
                          ChannelsStep>;

/// An ordered list of steps, applied in float32. The result is a tensor laid out N=1, C, H, W.
struct MEDINFER_API Spec {
  std::vector<Step> steps;

  /// Throws Error(kInvalidArgument) naming the step index and field of the first invalid value.
  void validate() const;
};

/// Parses the manifest's "preprocessing" array (JSON text). Each element is an object with "step"
/// ("window" | "clip" | "resize" | "resample" | "crop_or_pad" | "flip" | "normalize" | "channels")
/// and that step's fields (docs/model-package.md). Throws Error(kInvalidArgument) naming
/// the step index and field for unknown steps, missing fields, wrong types or out-of-range values.
MEDINFER_API Spec parse_spec(const std::string& json_text);

/// Applies `spec` to a single-channel image of any pixel type. Throws Error(kInvalidArgument) for an
/// empty or multi-channel image. Thread-safe.
MEDINFER_API Tensor apply(const Spec& spec, const Image& image, const Context& context = {});

/// Applies `spec` to each image and writes each result straight into one contiguous batch tensor
/// [N, C, H, W] (the only copy of each output). Every image must produce the same C, H, W:
/// Error(kInvalidArgument) naming the first image that does not. Thread-safe.
MEDINFER_API Tensor apply_batch(const Spec& spec, const std::vector<Image>& images,
                                const std::vector<Context>& contexts = {});

}  // namespace medinfer::preprocess
