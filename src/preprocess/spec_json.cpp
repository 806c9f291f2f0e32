#include <algorithm>
#include "preprocess/spec_json.hpp"

#include <medinfer/error.hpp>

namespace medinfer::preprocess {
namespace detail {

using medinfer::detail::get_integer;
using medinfer::detail::get_number;
using medinfer::detail::get_string;
using medinfer::detail::Json;

namespace {

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

}  // namespace

Spec spec_from_json(const Json& steps, const std::string& where) {
  if (!steps.is_array()) {
    throw Error(ErrorCode::kInvalidArgument, where + ": expected an array of steps, got " + steps.type_name());
  }
  auto clamp_int = [](std::int64_t v) {
    return static_cast<int>(std::max<std::int64_t>(-1, std::min<std::int64_t>(v, 1 << 30)));
  };
  auto number_or = [](const Json& s, const char* key, double fallback, const std::string& at) {
    return s.contains(key) ? get_number(s, key, at) : fallback;
  };
  Spec spec;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const Json& s = steps[i];
    const std::string kind = get_string(s, "step", at);
    if (kind == "window") {
      if (s.contains("percentiles")) {
        medinfer::detail::reject_unknown_fields(s, {"step", "percentiles"}, at);
        const auto [lo, hi] = medinfer::detail::get_number_pair(s, "percentiles", at, "[lower, upper]");
        WindowStep w;
        w.use_percentiles = true;
        w.lower_percentile = lo;
        w.upper_percentile = hi;
        spec.steps.emplace_back(w);
      } else {
        medinfer::detail::reject_unknown_fields(s, {"step", "center", "width", "from_file", "function"}, at);
        WindowStep w{get_number(s, "center", at), get_number(s, "width", at)};
        w.from_file = medinfer::detail::get_bool(s, "from_file", at, false);
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
        spec.steps.emplace_back(w);
      }
    } else if (kind == "clip") {
      medinfer::detail::reject_unknown_fields(s, {"step", "min", "max"}, at);
      spec.steps.emplace_back(ClipStep{get_number(s, "min", at), get_number(s, "max", at)});
    } else if (kind == "resize") {
      medinfer::detail::reject_unknown_fields(s, {"step", "width", "height", "depth", "interpolation", "mode", "pad_value"},
                                              at);
      ResizeStep r{clamp_int(get_integer(s, "width", at)), clamp_int(get_integer(s, "height", at)),
                   parse_interpolation(s, at, Interpolation::kArea)};
      const std::string mode = s.contains("mode") ? get_string(s, "mode", at) : "stretch";
      if (mode != "stretch" && mode != "keep_aspect_pad") {
        throw Error(ErrorCode::kInvalidArgument,
                    at + ".mode: '" + mode + "' is not one of stretch, keep_aspect_pad");
      }
      r.keep_aspect = mode == "keep_aspect_pad";
      r.pad_value = number_or(s, "pad_value", 0.0, at);
      if (s.contains("depth")) r.depth = clamp_int(get_integer(s, "depth", at));
      if (s.contains("depth") && r.depth == 0) r.depth = -1;  // 0 written explicitly: out of range
      spec.steps.emplace_back(r);
    } else if (kind == "resample") {
      medinfer::detail::reject_unknown_fields(s, {"step", "spacing_mm", "interpolation", "antialias"}, at);
      const Json* spacing = s.contains("spacing_mm") ? &s.at("spacing_mm") : nullptr;
      if (spacing == nullptr || !spacing->is_array() || (spacing->size() != 2 && spacing->size() != 3) ||
          !std::all_of(spacing->begin(), spacing->end(), [](const Json& v) { return v.is_number(); })) {
        throw Error(ErrorCode::kInvalidArgument, at + ".spacing_mm: must be [x, y] or [x, y, z] numbers (mm)");
      }
      ResampleStep r{(*spacing)[0].get<double>(), (*spacing)[1].get<double>(),
                     parse_interpolation(s, at, Interpolation::kLinear),
                     medinfer::detail::get_bool(s, "antialias", at, true)};
      if (spacing->size() == 3) {
        r.spacing_z = (*spacing)[2].get<double>();
        if (!(r.spacing_z > 0.0)) r.spacing_z = -1.0;  // given but not positive: validate() says so
      }
      spec.steps.emplace_back(r);
    } else if (kind == "crop_or_pad") {
      medinfer::detail::reject_unknown_fields(s, {"step", "width", "height", "depth", "pad_value"}, at);
      CropOrPadStep c{clamp_int(get_integer(s, "width", at)), clamp_int(get_integer(s, "height", at)),
                      number_or(s, "pad_value", 0.0, at)};
      if (s.contains("depth")) c.depth = clamp_int(get_integer(s, "depth", at));
      if (s.contains("depth") && c.depth == 0) c.depth = -1;
      spec.steps.emplace_back(c);
    } else if (kind == "flip") {
      medinfer::detail::reject_unknown_fields(s, {"step", "axis"}, at);
      const std::string axis = get_string(s, "axis", at);
      if (axis != "horizontal" && axis != "vertical" && axis != "depth") {
        throw Error(ErrorCode::kInvalidArgument, at + ".axis: '" + axis + "' is not horizontal, vertical or depth");
      }
      spec.steps.emplace_back(FlipStep{axis == "horizontal", axis == "depth"});
    } else if (kind == "normalize") {
      medinfer::detail::reject_unknown_fields(s, {"step", "mode", "mean", "std"}, at);
      const std::string mode = s.contains("mode") ? get_string(s, "mode", at) : "fixed";
      NormalizeStep n;
      if (mode == "fixed") {
        // A number, or one number per channel.
        auto numbers = [&](const char* key, double& one, std::vector<double>& many) {
          if (s.contains(key) && s.at(key).is_array()) {
            const Json& a = s.at(key);
            if (a.empty() || a.size() > 16 ||
                !std::all_of(a.begin(), a.end(), [](const Json& v) { return v.is_number(); })) {
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
          throw Error(ErrorCode::kInvalidArgument, at + ".std: " + std::to_string(n.channel_stds.size()) +
                                                       " values for " + std::to_string(n.channel_means.size()) +
                                                       " means");
        }
      } else if (mode == "zscore" || mode == "minmax") {
        if (s.contains("mean") || s.contains("std")) {
          throw Error(ErrorCode::kInvalidArgument, at + ": mode '" + mode + "' computes mean/std from the image");
        }
        n.mode = mode == "zscore" ? NormalizeStep::Mode::kZScore : NormalizeStep::Mode::kMinMax;
      } else {
        throw Error(ErrorCode::kInvalidArgument, at + ".mode: '" + mode + "' is not one of fixed, zscore, minmax");
      }
      spec.steps.emplace_back(n);
    } else if (kind == "rescale") {
      medinfer::detail::reject_unknown_fields(s, {"step", "in_range", "out_range", "clip"}, at);
      const auto [a, b] = medinfer::detail::get_number_pair(s, "in_range", at, "[min, max]");
      const auto [c, d] = medinfer::detail::get_number_pair(s, "out_range", at, "[min, max]");
      spec.steps.emplace_back(RescaleStep{a, b, c, d, medinfer::detail::get_bool(s, "clip", at, true)});
    } else if (kind == "color") {
      medinfer::detail::reject_unknown_fields(s, {"step", "to"}, at);
      const std::string to = get_string(s, "to", at);
      if (to != "gray" && to != "rgb") throw Error(ErrorCode::kInvalidArgument, at + ".to: '" + to + "' is not gray or rgb");
      spec.steps.emplace_back(ColorStep{to == "rgb"});
    } else if (kind == "frame") {
      medinfer::detail::reject_unknown_fields(s, {"step", "index"}, at);
      spec.steps.emplace_back(FrameStep{clamp_int(get_integer(s, "index", at))});
    } else if (kind == "modality_lut") {
      medinfer::detail::reject_unknown_fields(s, {"step", "apply"}, at);
      if (!s.contains("apply")) throw Error(ErrorCode::kInvalidArgument, at + ".apply: missing (true or false)");
      spec.steps.emplace_back(ModalityLutStep{medinfer::detail::get_bool(s, "apply", at, true)});
    } else if (kind == "reorient") {
      medinfer::detail::reject_unknown_fields(s, {"step", "axes"}, at);
      spec.steps.emplace_back(ReorientStep{get_string(s, "axes", at)});
    } else if (kind == "channels") {
      medinfer::detail::reject_unknown_fields(s, {"step", "replicate"}, at);
      spec.steps.emplace_back(ChannelsStep{clamp_int(get_integer(s, "replicate", at))});
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  at + ".step: unknown step '" + kind +
                      "' (known: frame, modality_lut, window, rescale, clip, resize, resample, crop_or_pad, flip, reorient, normalize, "
                      "color, channels)");
    }
  }
  try {
    spec.validate();
  } catch (const Error& e) {
    medinfer::detail::rethrow_with_location(e, where, "preprocessing");
  }
  return spec;
}

}  // namespace detail

Spec parse_spec(const std::string& json_text) {
  return medinfer::detail::guarded_parse("preprocessing", [&] {
    return detail::spec_from_json(medinfer::detail::parse_json(json_text, "preprocessing"), "preprocessing");
  });
}

}  // namespace medinfer::preprocess
