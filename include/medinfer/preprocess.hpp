// Preprocessing declared as data: the model package's ordered steps, applied to an Image.
#pragma once

#include <medinfer/dicom.hpp>
#include <medinfer/export.hpp>
#include <medinfer/image.hpp>
#include <medinfer/tensor.hpp>
#include <medinfer/volume.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace medinfer::preprocess {

/// "window": maps [center − width/2, center + width/2] linearly onto [0, 1] and clips outside it.
/// With `use_percentiles`, the bounds are the image's own lower/upper percentiles (numpy's linear
/// definition) instead: {"step": "window", "percentiles": [1, 99]}. With `from_file`, the file's own
/// first VOI window (WindowCenter/WindowWidth, LINEAR) is used when it has one, else center/width:
/// {"step": "window", "from_file": true, "center": 40, "width": 400}.
///
/// "function" picks the curve (output always in [0, 1]); c = center, w = width:
/// - "linear" (default): (x − (c − w/2)) / w, clipped;
/// - "dicom_linear": DICOM's LINEAR (PS3.3 C.11.2.1.2.1): (x − (c − 0.5)) / (w − 1) + 0.5, clipped
///   (w >= 1);
/// - "linear_exact": DICOM's LINEAR_EXACT: (x − c) / w + 0.5, clipped;
/// - "sigmoid": DICOM's SIGMOID: 1 / (1 + exp(−4 (x − c) / w)).
/// With `from_file`, the file's VOILUTFunction picks the curve too (LINEAR → dicom_linear); a file with
/// a VOI LUT Sequence and no window gets its lookup table, scaled to [0, 1].
struct WindowStep {
  enum class Function { kLinear, kDicomLinear, kLinearExact, kSigmoid };
  double center = 0.0;
  double width = 1.0;  ///< > 0
  bool use_percentiles = false;
  double lower_percentile = 1.0, upper_percentile = 99.0;  ///< 0 <= lower < upper <= 100
  bool from_file = false;
  Function function = Function::kLinear;
};

/// What a step may take from the input's header: the file's first VOI window and its function
/// ("LINEAR", "LINEAR_EXACT", "SIGMOID"), when present.
struct Context {
  bool has_file_window = false;
  double file_window_center = 0.0, file_window_width = 1.0;
  std::string file_window_function = "LINEAR";
  /// The file's VOI LUT Sequence (first item), used by from_file windows when the file has no
  /// WindowCenter/Width: output = lut[clamp(round(x) - first_mapped)] / (2^bits - 1).
  std::vector<std::uint16_t> file_voi_lut;
  std::int32_t file_voi_lut_first_mapped = 0;
  std::uint16_t file_voi_lut_bits = 16;
};

/// The Context a file's header gives (its first window and function, its VOI LUT Sequence).
MEDINFER_API Context context_from(const dicom::ImageHeader& header);

/// "rescale": maps [in_min, in_max] linearly onto [out_min, out_max] ("in_range", "out_range"), and
/// with "clip" (default true) clips to the output range.
struct RescaleStep {
  double in_min = 0.0, in_max = 1.0;    ///< in_min < in_max
  double out_min = 0.0, out_max = 1.0;  ///< out_min != out_max
  bool clip = true;
};

/// "clip": values clipped to [min, max].
struct ClipStep {
  double min = 0.0, max = 1.0;  ///< min < max
};

enum class Interpolation { kArea, kLinear, kNearest, kCubic };

/// "resize" to width x height. mode "stretch" (default), or "keep_aspect_pad": scaled by
/// min(width/w, height/h) (sizes rounded, at least 1), then centred and padded with `pad_value`.
///
/// Volumes: `depth` (slices, 1..16384) resizes along z too; 0 keeps the depth. keep_aspect_pad is
/// 2D only. Interpolation for volumes: area (shrinking: exact box average; enlarging: linear),
/// linear or nearest.
struct ResizeStep {
  int width = 0;   ///< 1..16384
  int height = 0;  ///< 1..16384
  Interpolation interpolation = Interpolation::kArea;
  bool keep_aspect = false;
  double pad_value = 0.0;
  int depth = 0;  ///< volumes only; 0 = keep
};

/// "resample" to a pixel spacing in mm (x, y) using the image's own spacing: new size =
/// round(size × old spacing / new spacing). With `antialias` (default), shrinking uses area
/// interpolation (a box filter), so fine detail averages instead of aliasing.
/// "spacing_mm": [x, y] or, for volumes, [x, y, z] (z absent: slices kept as they are). Each axis is
/// resampled separately (half-pixel-centre mapping, edges clamped); with antialias, an axis that
/// shrinks is box-averaged exactly.
struct ResampleStep {
  double spacing_x = 1.0, spacing_y = 1.0;  ///< > 0
  Interpolation interpolation = Interpolation::kLinear;
  bool antialias = true;
  double spacing_z = 0.0;  ///< volumes only; 0 = keep
};

/// "crop_or_pad": centred crop or pad to width x height (offsets floor((old − new) / 2)), padding
/// with `pad_value`. Bit-exact.
struct CropOrPadStep {
  int width = 0, height = 0;  ///< 1..16384
  double pad_value = 0.0;
  int depth = 0;  ///< volumes only; 0 = keep
};

/// "flip": "axis": "horizontal" (left-right), "vertical" (up-down) or, for volumes, "depth" (slice
/// order). Bit-exact.
struct FlipStep {
  bool horizontal = true;
  bool depth = false;
};

/// "reorient" (volumes): {"axes": "LPS"} permutes and flips the volume's axes (no interpolation,
/// bit-exact) so that its x, y and z indices increase towards the named patient directions: one of
/// L/R, one of P/A, one of S/I, in any order ("RAS", "LPI", "SLP", ...). Each axis goes to the
/// patient direction its direction cosine is closest to.
struct ReorientStep {
  std::string axes = "LPS";
};

/// "normalize": mode "fixed" (default): (x − mean) / std, where "mean" and "std" are numbers or,
/// for colour, one per channel ([0.485, 0.456, 0.406]); "zscore": the image's own mean and population
/// std (over all channels); "minmax": (x − min) / (max − min). A constant image normalises to zeros.
struct NormalizeStep {
  enum class Mode { kFixed, kZScore, kMinMax };
  double mean = 0.0;
  double std = 1.0;  ///< > 0 (fixed)
  Mode mode = Mode::kFixed;
  std::vector<double> channel_means, channel_stds;  ///< per channel (fixed); empty: mean/std for all
};

/// "color": {"to": "gray"} turns an RGB image into one luma channel (0.299 R + 0.587 G + 0.114 B);
/// {"to": "rgb"} makes a grayscale image three identical channels (an RGB image stays as it is).
struct ColorStep {
  bool to_rgb = false;
};

/// "channels": {"replicate": N}: the single channel copied to N channels (1..16), e.g. 3 for models
/// pretrained on RGB. Applies to the output, wherever it appears in the list.
struct ChannelsStep {
  int replicate = 3;
};

/// Input steps, read before decoding (Pipeline and `medinfer preprocess` honour them; apply() gets
/// an image already read): {"step": "frame", "index": N} picks frame N of a multi-frame object
/// (default 0); {"step": "modality_lut", "apply": false} keeps the stored values instead of
/// modality units. They must come before every other step.
struct FrameStep {
  int index = 0;  ///< 0..65535
};
struct ModalityLutStep {
  bool apply = true;
};

using Step = std::variant<WindowStep, ResizeStep, NormalizeStep, ClipStep, ResampleStep, CropOrPadStep, FlipStep,
                          ChannelsStep, ReorientStep, ColorStep, FrameStep, ModalityLutStep, RescaleStep>;

/// An ordered list of steps, applied in float32. The result is a tensor laid out N=1, C, H, W
/// (apply) or N=1, C, D, H, W (apply_volume).
struct MEDINFER_API Spec {
  std::vector<Step> steps;

  /// Throws Error(kInvalidArgument) naming the step index and field of the first invalid value.
  void validate() const;
  /// True when a step only makes sense for volumes (depth, a z spacing, reorient, a depth flip).
  bool is_volumetric() const;
  /// `base` with what the input steps say (the frame to read, the Modality LUT on or off): how
  /// Pipeline and `medinfer preprocess` read a file for this spec.
  dicom::ReadOptions read_options(dicom::ReadOptions base = {}) const;
};

/// Parses the manifest's "preprocessing" array (JSON text). Each element is an object with "step"
/// ("window" | "clip" | "resize" | "resample" | "crop_or_pad" | "flip" | "normalize" | "channels")
/// and that step's fields (docs/model-package.md). Throws Error(kInvalidArgument) naming
/// the step index and field for unknown steps, missing fields, wrong types or out-of-range values.
MEDINFER_API Spec parse_spec(const std::string& json_text);

/// Applies `spec` to an image of any pixel type with 1 or 3 (RGB) channels. Throws
/// Error(kInvalidArgument) for an empty image, other channel counts, a volumetric spec, or per-channel
/// normalisation whose count differs from the image's channels. Thread-safe.
MEDINFER_API Tensor apply(const Spec& spec, const Image& image, const Context& context = {});

/// Applies `spec` to each image and writes each result straight into one contiguous batch tensor
/// [N, C, H, W] (the only copy of each output), images processed on `threads` threads (0: all
/// cores; OpenCV's own threads are not used). Every image must produce the same C, H, W:
/// Error(kInvalidArgument) naming the lowest-numbered image that does not. Thread-safe.
MEDINFER_API Tensor apply_batch(const Spec& spec, const std::vector<Image>& images,
                                const std::vector<Context>& contexts = {}, unsigned threads = 0);

/// Applies `spec` to a volume (float32 after the Modality LUT, or any scalar type): window, clip,
/// normalize (statistics over the whole volume), resample and resize in 3D, crop_or_pad, flip,
/// reorient, channels. The result is [1, C, D, H, W]. Resampling runs on `threads` threads (0: all
/// cores). Throws Error(kInvalidArgument) naming the step for what volumes cannot do (cubic
/// interpolation, keep_aspect_pad), kResourceLimit for an output side above 16384. Thread-safe.
MEDINFER_API Tensor apply_volume(const Spec& spec, const Volume& volume, const Context& context = {},
                                 unsigned threads = 0);

}  // namespace medinfer::preprocess
