#include "preprocess/spec_json.hpp"

#include <medinfer/error.hpp>

namespace medinfer::preprocess {
namespace detail {

using medinfer::detail::get_integer;
using medinfer::detail::get_number;
using medinfer::detail::get_string;
using medinfer::detail::Json;

namespace {

// Rejects members the step does not define: a typo ("centre") must not silently fall back.
void reject_unknown(const Json& obj, std::initializer_list<const char*> known, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = it.key() == "step";
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) throw Error(ErrorCode::kInvalidArgument, where + ": unknown field '" + it.key() + "'");
  }
}

Interpolation parse_interpolation(const Json& obj, const std::string& where) {
  if (!obj.contains("interpolation")) return Interpolation::kArea;
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
  Spec spec;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const Json& s = steps[i];
    const std::string kind = get_string(s, "step", at);
    if (kind == "window") {
      reject_unknown(s, {"center", "width"}, at);
      spec.steps.emplace_back(WindowStep{get_number(s, "center", at), get_number(s, "width", at)});
    } else if (kind == "resize") {
      reject_unknown(s, {"width", "height", "interpolation"}, at);
      const auto w = get_integer(s, "width", at), h = get_integer(s, "height", at);
      auto clamp_int = [](std::int64_t v) { return static_cast<int>(std::max<std::int64_t>(-1, std::min<std::int64_t>(v, 1 << 30))); };
      spec.steps.emplace_back(ResizeStep{clamp_int(w), clamp_int(h), parse_interpolation(s, at)});
    } else if (kind == "normalize") {
      reject_unknown(s, {"mean", "std"}, at);
      spec.steps.emplace_back(NormalizeStep{get_number(s, "mean", at), get_number(s, "std", at)});
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  at + ".step: unknown step '" + kind + "' (known: window, resize, normalize)");
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
  return detail::spec_from_json(medinfer::detail::parse_json(json_text, "preprocessing"), "preprocessing");
}

}  // namespace medinfer::preprocess
