// The step table: for every preprocessing step, its name, how it is parsed from the manifest, how it is
// validated, and how it is applied to a 2D image (OpenCV, plane.hpp) and to a volume (grid.hpp), all in
// one StepDef. Every dispatch below is a std::visit over preprocess::Step, so a step type added to the
// variant without a complete StepDef (a missing parse, validate, 2D or volume case) fails to compile.
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include "preprocess/grid.hpp"
#include "preprocess/plane.hpp"
#include "preprocess/steps.hpp"
#include "preprocess/window.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace medinfer::preprocess::detail {
namespace {

using medinfer::detail::get_bool;
using medinfer::detail::get_integer;
using medinfer::detail::get_number;
using medinfer::detail::get_number_pair;
using medinfer::detail::get_string;
using medinfer::detail::Json;
using medinfer::detail::reject_unknown_fields;

[[noreturn]] void invalid(std::size_t index, const char* field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "preprocessing[" + std::to_string(index) + "]." + field + ": " + what);
}
void check_side(std::size_t i, const char* field, int v) {
  if (v < 1 || v > kMaxSide) invalid(i, field, "must be in 1.." + std::to_string(kMaxSide));
}
void check_finite(std::size_t i, const char* field, double v) {
  if (!std::isfinite(v)) invalid(i, field, "must be finite");
}
// The target box resize and crop_or_pad share: width and height, an optional depth (volumes) and a pad.
void check_box(std::size_t i, int width, int height, int depth, double pad_value) {
  check_side(i, "width", width);
  check_side(i, "height", height);
  if (depth != 0) check_side(i, "depth", depth);
  check_finite(i, "pad_value", pad_value);
}
int clamp_int(std::int64_t v) { return static_cast<int>(std::max<std::int64_t>(-1, std::min<std::int64_t>(v, 1 << 30))); }
double number_or(const Json& s, const char* key, double fallback, const std::string& at) {
  return s.contains(key) ? get_number(s, key, at) : fallback;
}
// "depth": absent is 0 (keep); 0 written explicitly is out of range (-1, refused by check_box).
int parse_depth(const Json& s, const std::string& at) {
  if (!s.contains("depth")) return 0;
  const int depth = clamp_int(get_integer(s, "depth", at));
  return depth == 0 ? -1 : depth;
}
Interpolation parse_interpolation(const Json& obj, const std::string& where, Interpolation fallback) {
  if (!obj.contains("interpolation")) return fallback;
  const std::string s = get_string(obj, "interpolation", where);
  if (s == "area") return Interpolation::kArea;
  if (s == "linear") return Interpolation::kLinear;
  if (s == "nearest") return Interpolation::kNearest;
  if (s == "cubic") return Interpolation::kCubic;
  throw Error(ErrorCode::kInvalidArgument,
              medinfer::detail::field_path(where, "interpolation") + ": '" + s + "' is not one of area, linear, nearest, cubic");
}
// An input step must come before every other step (it acts when the file is read).
void check_input_step_first(const Spec& spec, std::size_t i, const char* name);

// Defaults for the two questions only some steps answer "yes" to.
struct PlainStep {
  template <class T>
  static bool volumetric(const T&) { return false; }
  template <class T>
  static void read(const T&, dicom::ReadOptions&) {}
};

template <class T>
struct StepDef;  // one per alternative of preprocess::Step, below

// ---- frame: an input step (the frame to read) ----
template <>
struct StepDef<FrameStep> : PlainStep {
  static constexpr const char* kName = "frame";
  static FrameStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "index"}, at);
    return FrameStep{clamp_int(get_integer(s, "index", at))};
  }
  static void validate(const FrameStep& f, const Spec& spec, std::size_t i) {
    if (f.index < 0 || f.index > 65535) invalid(i, "index", "must be in 0..65535");
    check_input_step_first(spec, i, kName);
  }
  static void read(const FrameStep& f, dicom::ReadOptions& o) { o.frame = static_cast<std::uint32_t>(f.index); }
  static void apply(const FrameStep&, PlaneRun&) {}   // acted when the input was read
  static void apply(const FrameStep&, VolumeRun&) {}
};

// ---- modality_lut: an input step (stored values or modality units) ----
template <>
struct StepDef<ModalityLutStep> : PlainStep {
  static constexpr const char* kName = "modality_lut";
  static ModalityLutStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "apply"}, at);
    if (!s.contains("apply")) throw Error(ErrorCode::kInvalidArgument, at + ".apply: missing (true or false)");
    return ModalityLutStep{get_bool(s, "apply", at, true)};
  }
  static void validate(const ModalityLutStep&, const Spec& spec, std::size_t i) { check_input_step_first(spec, i, kName); }
  static void read(const ModalityLutStep& m, dicom::ReadOptions& o) { o.apply_modality_lut = m.apply; }
  static void apply(const ModalityLutStep&, PlaneRun&) {}
  static void apply(const ModalityLutStep&, VolumeRun&) {}
};

// ---- window ----
template <>
struct StepDef<WindowStep> : PlainStep {
  static constexpr const char* kName = "window";
  static WindowStep parse(const Json& s, const std::string& at) {
    WindowStep w;
    if (s.contains("percentiles")) {
      reject_unknown_fields(s, {"step", "percentiles"}, at);
      const auto [lo, hi] = get_number_pair(s, "percentiles", at, "[lower, upper]");
      w.use_percentiles = true;
      w.lower_percentile = lo;
      w.upper_percentile = hi;
      return w;
    }
    reject_unknown_fields(s, {"step", "center", "width", "from_file", "function"}, at);
    w.center = get_number(s, "center", at);
    w.width = get_number(s, "width", at);
    w.from_file = get_bool(s, "from_file", at, false);
    const std::string fn = s.contains("function") ? get_string(s, "function", at) : "linear";
    if (fn == "linear") {
      w.function = WindowStep::Function::kLinear;
    } else if (fn == "dicom_linear") {
      w.function = WindowStep::Function::kDicomLinear;
    } else if (fn == "linear_exact") {
      w.function = WindowStep::Function::kLinearExact;
    } else if (fn == "sigmoid") {
      w.function = WindowStep::Function::kSigmoid;
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  at + ".function: '" + fn + "' is not one of linear, dicom_linear, linear_exact, sigmoid");
    }
    return w;
  }
  static void validate(const WindowStep& w, const Spec&, std::size_t i) {
    if (w.use_percentiles) {
      if (!(w.lower_percentile >= 0.0 && w.lower_percentile < w.upper_percentile && w.upper_percentile <= 100.0)) {
        invalid(i, "percentiles", "must be [lower, upper] with 0 <= lower < upper <= 100");
      }
      return;
    }
    check_finite(i, "center", w.center);
    if (!std::isfinite(w.width) || w.width <= 0.0) invalid(i, "width", "must be finite and > 0");
    if (w.function == WindowStep::Function::kDicomLinear && w.width < 1.0) invalid(i, "width", "must be >= 1 for dicom_linear");
  }
  // The bounds of a percentile window over n values; false for a constant input (nothing to window).
  static bool percentile_bounds(const WindowStep& w, const float* x, std::size_t n, double& center, double& width) {
    const double lo = percentile(x, n, w.lower_percentile);
    const double hi = percentile(x, n, w.upper_percentile);
    if (!(hi > lo)) return false;
    center = (lo + hi) / 2.0;
    width = hi - lo;
    return true;
  }
  // One rule for both paths: the file's VOI LUT when asked for and present, else the window curve.
  static void apply_values(const WindowStep& w, const Context& context, float* x, std::size_t n) {
    double center = 0.0, width = 1.0;
    WindowStep::Function fn = WindowStep::Function::kLinear;
    if (w.use_percentiles) {
      if (!percentile_bounds(w, x, n, center, width)) {
        std::fill(x, x + n, 0.0f);  // percentiles of a constant image coincide
        return;
      }
    } else {
      if (apply_file_voi_lut(w, context, x, n)) return;
      fn = resolve_window(w, context, center, width);
    }
    apply_window_curve(x, n, fn, center, width);
  }
  static void apply(const WindowStep& w, PlaneRun& p) {
    if (!p.x.isContinuous()) p.x = p.x.clone();
    apply_values(w, p.context, p.x.ptr<float>(), p.x.total() * static_cast<std::size_t>(p.x.channels()));
  }
  static void apply(const WindowStep& w, VolumeRun& v) { apply_values(w, v.context, v.g.v.data(), v.g.v.size()); }
};

// ---- rescale ----
template <>
struct StepDef<RescaleStep> : PlainStep {
  static constexpr const char* kName = "rescale";
  static RescaleStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "in_range", "out_range", "clip"}, at);
    const auto [a, b] = get_number_pair(s, "in_range", at, "[min, max]");
    const auto [c, d] = get_number_pair(s, "out_range", at, "[min, max]");
    return RescaleStep{a, b, c, d, get_bool(s, "clip", at, true)};
  }
  static void validate(const RescaleStep& r, const Spec&, std::size_t i) {
    for (double v : {r.in_min, r.in_max, r.out_min, r.out_max}) check_finite(i, "in_range", v);
    if (!(r.in_min < r.in_max)) invalid(i, "in_range", "must be [min, max] with min < max");
    if (r.out_min == r.out_max) invalid(i, "out_range", "must be two different values");
  }
  static double scale(const RescaleStep& r) { return (r.out_max - r.out_min) / (r.in_max - r.in_min); }
  static void apply(const RescaleStep& r, PlaneRun& p) {
    const double s = scale(r);
    p.x.convertTo(p.x, -1, s, r.out_min - r.in_min * s);
    if (r.clip) {
      cv::min(p.x, std::max(r.out_min, r.out_max), p.x);
      cv::max(p.x, std::min(r.out_min, r.out_max), p.x);
    }
  }
  static void apply(const RescaleStep& r, VolumeRun& v) {
    const double sc = scale(r);
    const auto s = static_cast<float>(sc), o = static_cast<float>(r.out_min - r.in_min * sc);
    const auto lo = static_cast<float>(std::min(r.out_min, r.out_max));
    const auto hi = static_cast<float>(std::max(r.out_min, r.out_max));
    for (float& x : v.g.v) {
      x = x * s + o;
      if (r.clip) x = std::min(hi, std::max(lo, x));
    }
  }
};

// ---- clip ----
template <>
struct StepDef<ClipStep> : PlainStep {
  static constexpr const char* kName = "clip";
  static ClipStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "min", "max"}, at);
    return ClipStep{get_number(s, "min", at), get_number(s, "max", at)};
  }
  static void validate(const ClipStep& c, const Spec&, std::size_t i) {
    check_finite(i, "min", c.min);
    check_finite(i, "max", c.max);
    if (!(c.min < c.max)) invalid(i, "max", "must be greater than min");
  }
  static void apply(const ClipStep& c, PlaneRun& p) {
    cv::min(p.x, c.max, p.x);
    cv::max(p.x, c.min, p.x);
  }
  static void apply(const ClipStep& c, VolumeRun& v) {
    const auto lo = static_cast<float>(c.min), hi = static_cast<float>(c.max);
    for (float& x : v.g.v) x = std::min(hi, std::max(lo, x));
  }
};

// ---- resize ----
template <>
struct StepDef<ResizeStep> {
  static constexpr const char* kName = "resize";
  static ResizeStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "width", "height", "depth", "interpolation", "mode", "pad_value"}, at);
    ResizeStep r{clamp_int(get_integer(s, "width", at)), clamp_int(get_integer(s, "height", at)),
                 parse_interpolation(s, at, Interpolation::kArea)};
    const std::string mode = s.contains("mode") ? get_string(s, "mode", at) : "stretch";
    if (mode != "stretch" && mode != "keep_aspect_pad") {
      throw Error(ErrorCode::kInvalidArgument, at + ".mode: '" + mode + "' is not one of stretch, keep_aspect_pad");
    }
    r.keep_aspect = mode == "keep_aspect_pad";
    r.pad_value = number_or(s, "pad_value", 0.0, at);
    r.depth = parse_depth(s, at);
    return r;
  }
  static void validate(const ResizeStep& r, const Spec&, std::size_t i) {
    check_box(i, r.width, r.height, r.depth, r.pad_value);
    if (r.depth != 0 && r.keep_aspect) invalid(i, "mode", "keep_aspect_pad is 2D only");
  }
  static bool volumetric(const ResizeStep& r) { return r.depth != 0; }
  static void read(const ResizeStep&, dicom::ReadOptions&) {}
  static void apply(const ResizeStep& r, PlaneRun& p) {
    if (!r.keep_aspect) {
      p.x = resized(p.x, r.width, r.height, cv_interpolation(r.interpolation));
      return;
    }
    const double scale = std::min(static_cast<double>(r.width) / p.x.cols, static_cast<double>(r.height) / p.x.rows);
    const int w = std::max(1, std::min(r.width, static_cast<int>(std::lround(p.x.cols * scale))));
    const int h = std::max(1, std::min(r.height, static_cast<int>(std::lround(p.x.rows * scale))));
    p.x = crop_or_pad(resized(p.x, w, h, cv_interpolation(r.interpolation)), r.width, r.height, r.pad_value);
  }
  static void apply(const ResizeStep& r, VolumeRun& v) {
    if (r.keep_aspect) fail(v.index, "resize mode keep_aspect_pad is available for 2D images only");
    const Mode mode = mode_of(v.index, r.interpolation);
    resample_axis(v.g, 0, static_cast<std::size_t>(r.width), mode, v.threads);
    resample_axis(v.g, 1, static_cast<std::size_t>(r.height), mode, v.threads);
    if (r.depth > 0) resample_axis(v.g, 2, static_cast<std::size_t>(r.depth), mode, v.threads);
  }
};

// ---- resample ----
template <>
struct StepDef<ResampleStep> {
  static constexpr const char* kName = "resample";
  static ResampleStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "spacing_mm", "interpolation", "antialias"}, at);
    const Json* spacing = s.contains("spacing_mm") ? &s.at("spacing_mm") : nullptr;
    if (spacing == nullptr || !spacing->is_array() || (spacing->size() != 2 && spacing->size() != 3) ||
        !std::all_of(spacing->begin(), spacing->end(), [](const Json& v) { return v.is_number(); })) {
      throw Error(ErrorCode::kInvalidArgument, at + ".spacing_mm: must be [x, y] or [x, y, z] numbers (mm)");
    }
    ResampleStep r{(*spacing)[0].get<double>(), (*spacing)[1].get<double>(),
                   parse_interpolation(s, at, Interpolation::kLinear), get_bool(s, "antialias", at, true)};
    if (spacing->size() == 3) {
      r.spacing_z = (*spacing)[2].get<double>();
      if (!(r.spacing_z > 0.0)) r.spacing_z = -1.0;  // given but not positive: validate() says so
    }
    return r;
  }
  static void validate(const ResampleStep& r, const Spec&, std::size_t i) {
    for (double v : {r.spacing_x, r.spacing_y}) {
      if (!std::isfinite(v) || v <= 0.0 || v > 1000.0) invalid(i, "spacing_mm", "must be in (0, 1000]");
    }
    if (r.spacing_z != 0.0 && (!std::isfinite(r.spacing_z) || r.spacing_z <= 0.0 || r.spacing_z > 1000.0)) {
      invalid(i, "spacing_mm", "must be in (0, 1000]");
    }
  }
  static bool volumetric(const ResampleStep& r) { return r.spacing_z != 0.0; }
  static void read(const ResampleStep&, dicom::ReadOptions&) {}
  static void apply(const ResampleStep& r, PlaneRun& p) {
    const int w = std::max(1, static_cast<int>(std::lround(p.x.cols * p.spacing_x / r.spacing_x)));
    const int h = std::max(1, static_cast<int>(std::lround(p.x.rows * p.spacing_y / r.spacing_y)));
    if (w > kMaxSide || h > kMaxSide) {
      throw Error(ErrorCode::kResourceLimit, "preprocess: resampling to " + std::to_string(w) + "x" + std::to_string(h) +
                                                 " exceeds the limit " + std::to_string(kMaxSide));
    }
    const bool shrinking = w < p.x.cols || h < p.x.rows;
    p.x = resized(p.x, w, h, r.antialias && shrinking ? cv::INTER_AREA : cv_interpolation(r.interpolation));
    p.spacing_x = r.spacing_x;
    p.spacing_y = r.spacing_y;
  }
  static void apply(const ResampleStep& r, VolumeRun& v) {
    const double targets[3] = {r.spacing_x, r.spacing_y, r.spacing_z};
    const std::size_t sizes[3] = {v.g.w, v.g.h, v.g.d};
    for (int a = 0; a < 3; ++a) {
      if (targets[a] == 0.0) continue;  // z not given: slices kept
      const std::size_t n_out =
          checked_side(v.index, static_cast<double>(sizes[a]) * v.g.spacing[static_cast<std::size_t>(a)] / targets[a], "a side");
      const bool shrinking = n_out < sizes[a];
      const Mode mode = r.antialias && shrinking ? Mode::kArea : mode_of(v.index, r.interpolation);
      resample_axis(v.g, a, n_out, mode, v.threads);
      v.g.spacing[static_cast<std::size_t>(a)] = targets[a];
    }
  }
};

// ---- crop_or_pad ----
template <>
struct StepDef<CropOrPadStep> {
  static constexpr const char* kName = "crop_or_pad";
  static CropOrPadStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "width", "height", "depth", "pad_value"}, at);
    CropOrPadStep c{clamp_int(get_integer(s, "width", at)), clamp_int(get_integer(s, "height", at)),
                    number_or(s, "pad_value", 0.0, at)};
    c.depth = parse_depth(s, at);
    return c;
  }
  static void validate(const CropOrPadStep& c, const Spec&, std::size_t i) {
    check_box(i, c.width, c.height, c.depth, c.pad_value);
  }
  static bool volumetric(const CropOrPadStep& c) { return c.depth != 0; }
  static void read(const CropOrPadStep&, dicom::ReadOptions&) {}
  static void apply(const CropOrPadStep& c, PlaneRun& p) { p.x = crop_or_pad(p.x, c.width, c.height, c.pad_value); }
  static void apply(const CropOrPadStep& c, VolumeRun& v) {
    crop_or_pad(v.g, static_cast<std::size_t>(c.width), static_cast<std::size_t>(c.height),
                c.depth > 0 ? static_cast<std::size_t>(c.depth) : v.g.d, static_cast<float>(c.pad_value));
  }
};

// ---- flip ----
template <>
struct StepDef<FlipStep> {
  static constexpr const char* kName = "flip";
  static FlipStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "axis"}, at);
    const std::string axis = get_string(s, "axis", at);
    if (axis != "horizontal" && axis != "vertical" && axis != "depth") {
      throw Error(ErrorCode::kInvalidArgument, at + ".axis: '" + axis + "' is not horizontal, vertical or depth");
    }
    return FlipStep{axis == "horizontal", axis == "depth"};
  }
  static void validate(const FlipStep&, const Spec&, std::size_t) {}
  static bool volumetric(const FlipStep& f) { return f.depth; }
  static void read(const FlipStep&, dicom::ReadOptions&) {}
  static void apply(const FlipStep& f, PlaneRun& p) {
    cv::Mat flipped;
    cv::flip(p.x, flipped, f.horizontal ? 1 : 0);
    p.x = flipped;
  }
  static void apply(const FlipStep& f, VolumeRun& v) {
    const int axis = f.depth ? 2 : f.horizontal ? 0 : 1;
    std::array<bool, 3> flip{};
    flip[static_cast<std::size_t>(axis)] = true;
    permute_flip(v.g, {0, 1, 2}, flip);
  }
};

// ---- reorient (volumes) ----
template <>
struct StepDef<ReorientStep> {
  static constexpr const char* kName = "reorient";
  static ReorientStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "axes"}, at);
    return ReorientStep{get_string(s, "axes", at)};
  }
  static void validate(const ReorientStep& r, const Spec&, std::size_t i) {
    const std::string& a = r.axes;
    auto count = [&](const char* letters) {
      return std::count_if(a.begin(), a.end(), [&](char c) { return std::strchr(letters, c) != nullptr; });
    };
    if (a.size() != 3 || count("LR") != 1 || count("PA") != 1 || count("SI") != 1) {
      invalid(i, "axes", "'" + a + "' must name one of L/R, one of P/A and one of S/I, e.g. LPS or RAS");
    }
  }
  static bool volumetric(const ReorientStep&) { return true; }
  static void read(const ReorientStep&, dicom::ReadOptions&) {}
  // A 2D run never gets here: run_steps refuses volumetric specs first.
  static void apply(const ReorientStep&, PlaneRun&) {
    throw Error(ErrorCode::kInvalidArgument, "preprocess: reorient is a volume step: use apply_volume");
  }
  static void apply(const ReorientStep& r, VolumeRun& v) { reorient(v.g, v.index, r.axes); }
};

// ---- normalize ----
template <>
struct StepDef<NormalizeStep> : PlainStep {
  static constexpr const char* kName = "normalize";
  static NormalizeStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "mode", "mean", "std"}, at);
    const std::string mode = s.contains("mode") ? get_string(s, "mode", at) : "fixed";
    NormalizeStep n;
    if (mode == "fixed") {
      // A number, or one number per channel.
      auto numbers = [&](const char* key, double& one, std::vector<double>& many) {
        if (s.contains(key) && s.at(key).is_array()) {
          const Json& a = s.at(key);
          if (a.empty() || a.size() > 16 || !std::all_of(a.begin(), a.end(), [](const Json& v) { return v.is_number(); })) {
            throw Error(ErrorCode::kInvalidArgument, at + "." + key + ": must be a number or 1..16 numbers (one per channel)");
          }
          for (const Json& v : a) many.push_back(v.get<double>());
          one = many[0];
        } else {
          one = get_number(s, key, at);
        }
      };
      numbers("mean", n.mean, n.channel_means);
      numbers("std", n.std, n.channel_stds);
      if (n.channel_means.size() != n.channel_stds.size() && !n.channel_means.empty() && !n.channel_stds.empty()) {
        throw Error(ErrorCode::kInvalidArgument, at + ".std: " + std::to_string(n.channel_stds.size()) + " values for " +
                                                     std::to_string(n.channel_means.size()) + " means");
      }
    } else if (mode == "zscore" || mode == "minmax") {
      if (s.contains("mean") || s.contains("std")) {
        throw Error(ErrorCode::kInvalidArgument, at + ": mode '" + mode + "' computes mean/std from the image");
      }
      n.mode = mode == "zscore" ? NormalizeStep::Mode::kZScore : NormalizeStep::Mode::kMinMax;
    } else {
      throw Error(ErrorCode::kInvalidArgument, at + ".mode: '" + mode + "' is not one of fixed, zscore, minmax");
    }
    return n;
  }
  static void validate(const NormalizeStep& n, const Spec&, std::size_t i) {
    for (double v : n.channel_stds) {
      if (!std::isfinite(v) || v <= 0.0) invalid(i, "std", "every value must be finite and > 0");
    }
    for (double v : n.channel_means) check_finite(i, "mean", v);
    if (n.mode == NormalizeStep::Mode::kFixed) {
      check_finite(i, "mean", n.mean);
      if (!std::isfinite(n.std) || n.std <= 0.0) invalid(i, "std", "must be finite and > 0");
    }
  }
  static void apply(const NormalizeStep& n, PlaneRun& p) {
    cv::Mat& x = p.x;
    const cv::Mat all = x.reshape(1);  // statistics over every channel
    if (!n.channel_means.empty() || !n.channel_stds.empty()) {
      const std::size_t k = std::max(n.channel_means.size(), n.channel_stds.size());
      if (k != static_cast<std::size_t>(x.channels())) {
        throw Error(ErrorCode::kInvalidArgument, "preprocess: normalize has " + std::to_string(k) +
                                                     " per-channel values but the image has " +
                                                     std::to_string(x.channels()) + " channel(s)");
      }
      cv::Scalar m, sd;
      for (std::size_t c = 0; c < k; ++c) {
        m[static_cast<int>(c)] = n.channel_means.empty() ? n.mean : n.channel_means[c];
        sd[static_cast<int>(c)] = n.channel_stds.empty() ? n.std : n.channel_stds[c];
      }
      cv::subtract(x, m, x);
      cv::divide(x, sd, x);
      return;
    }
    double mean = n.mean, scale = 1.0 / n.std;
    if (n.mode == NormalizeStep::Mode::kZScore) {
      cv::Scalar m, sd;
      cv::meanStdDev(all, m, sd);
      mean = m[0];
      scale = sd[0] > 1e-12 ? 1.0 / sd[0] : 0.0;
    } else if (n.mode == NormalizeStep::Mode::kMinMax) {
      double lo = 0, hi = 0;
      cv::minMaxLoc(all, &lo, &hi);
      mean = lo;
      scale = hi > lo ? 1.0 / (hi - lo) : 0.0;
    }
    x.convertTo(x, -1, scale, -mean * scale);
  }
  static void apply(const NormalizeStep& n, VolumeRun& v) {
    if (n.channel_means.size() > 1 || n.channel_stds.size() > 1) {
      fail(v.index, "normalize has per-channel values but a volume has one channel");
    }
    double mean = n.mean, scale = 1.0 / n.std;
    if (n.mode == NormalizeStep::Mode::kZScore) {
      double sum = 0.0, sq = 0.0;
      for (float x : v.g.v) sum += x;
      mean = sum / static_cast<double>(v.g.v.size());
      for (float x : v.g.v) sq += (x - mean) * (x - mean);
      const double sd = std::sqrt(sq / static_cast<double>(v.g.v.size()));
      scale = sd > 1e-12 ? 1.0 / sd : 0.0;
    } else if (n.mode == NormalizeStep::Mode::kMinMax) {
      const auto [lo, hi] = std::minmax_element(v.g.v.begin(), v.g.v.end());
      mean = *lo;
      scale = *hi > *lo ? 1.0 / (static_cast<double>(*hi) - *lo) : 0.0;
    }
    for (float& x : v.g.v) x = static_cast<float>((x - mean) * scale);
  }
};

// ---- color ----
template <>
struct StepDef<ColorStep> : PlainStep {
  static constexpr const char* kName = "color";
  static ColorStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "to"}, at);
    const std::string to = get_string(s, "to", at);
    if (to != "gray" && to != "rgb") throw Error(ErrorCode::kInvalidArgument, at + ".to: '" + to + "' is not gray or rgb");
    return ColorStep{to == "rgb"};
  }
  static void validate(const ColorStep&, const Spec&, std::size_t) {}
  static void apply(const ColorStep& c, PlaneRun& p) {
    if (c.to_rgb && p.x.channels() == 1) {
      cv::Mat rgb;
      cv::merge(std::vector<cv::Mat>{p.x, p.x, p.x}, rgb);
      p.x = rgb;
    } else if (!c.to_rgb && p.x.channels() == 3) {
      cv::Mat gray;
      cv::cvtColor(p.x, gray, cv::COLOR_RGB2GRAY);
      p.x = gray;
    }
  }
  static void apply(const ColorStep& c, VolumeRun& v) {
    if (c.to_rgb) v.channels = 3;  // a scalar volume: "gray" changes nothing
  }
};

// ---- channels ----
template <>
struct StepDef<ChannelsStep> : PlainStep {
  static constexpr const char* kName = "channels";
  static ChannelsStep parse(const Json& s, const std::string& at) {
    reject_unknown_fields(s, {"step", "replicate"}, at);
    return ChannelsStep{clamp_int(get_integer(s, "replicate", at))};
  }
  static void validate(const ChannelsStep& c, const Spec&, std::size_t i) {
    if (c.replicate < 1 || c.replicate > 16) invalid(i, "replicate", "must be in 1..16");
  }
  static void apply(const ChannelsStep& c, PlaneRun& p) { p.channels = c.replicate; }
  static void apply(const ChannelsStep& c, VolumeRun& v) { v.channels = c.replicate; }
};

template <class T>
using Def = StepDef<std::decay_t<T>>;

void check_input_step_first(const Spec& spec, std::size_t i, const char* name) {
  if (i == 0) return;
  const Step& before = spec.steps[i - 1];
  if (!std::holds_alternative<FrameStep>(before) && !std::holds_alternative<ModalityLutStep>(before)) {
    invalid(i, "step", std::string(name) + " is an input step: it must come before every other step");
  }
}

// parse_step's dispatch by name, over every alternative of Step (in declaration order).
template <std::size_t... I>
std::optional<Step> parse_named(const std::string& kind, const Json& s, const std::string& at, std::index_sequence<I...>) {
  std::optional<Step> out;
  ((kind == StepDef<std::variant_alternative_t<I, Step>>::kName
        ? void(out.emplace(std::in_place_index<I>, StepDef<std::variant_alternative_t<I, Step>>::parse(s, at)))
        : void()),
   ...);
  return out;
}

template <std::size_t... I>
std::string names(std::index_sequence<I...>) {
  std::string out;
  ((out += (out.empty() ? "" : ", ") + std::string(StepDef<std::variant_alternative_t<I, Step>>::kName)), ...);
  return out;
}

constexpr auto kAll = std::make_index_sequence<std::variant_size_v<Step>>();

}  // namespace

Step parse_step(const Json& s, const std::string& at) {
  const std::string kind = get_string(s, "step", at);
  if (std::optional<Step> step = parse_named(kind, s, at, kAll)) return std::move(*step);
  throw Error(ErrorCode::kInvalidArgument, at + ".step: unknown step '" + kind + "' (known: " + names(kAll) + ")");
}

void validate_step(const Spec& spec, std::size_t i) {
  std::visit([&](const auto& step) { Def<decltype(step)>::validate(step, spec, i); }, spec.steps[i]);
}

bool is_volumetric(const Step& step) {
  return std::visit([](const auto& s) { return Def<decltype(s)>::volumetric(s); }, step);
}

void read_options(const Step& step, dicom::ReadOptions& options) {
  std::visit([&](const auto& s) { Def<decltype(s)>::read(s, options); }, step);
}

void apply_step(const Step& step, PlaneRun& run) {
  std::visit([&](const auto& s) { Def<decltype(s)>::apply(s, run); }, step);
}

void apply_step(const Step& step, VolumeRun& run) {
  std::visit([&](const auto& s) { Def<decltype(s)>::apply(s, run); }, step);
}

}  // namespace medinfer::preprocess::detail
