#include "preprocess/spec_json.hpp"

#include "preprocess/steps.hpp"

#include <medinfer/error.hpp>

namespace medinfer::preprocess {
namespace detail {

using medinfer::detail::Json;

Spec spec_from_json(const Json& steps, const std::string& where) {
  if (!steps.is_array()) {
    throw Error(ErrorCode::kInvalidArgument, where + ": expected an array of steps, got " + steps.type_name());
  }
  Spec spec;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    spec.steps.push_back(parse_step(steps[i], where + "[" + std::to_string(i) + "]"));  // the step table
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
