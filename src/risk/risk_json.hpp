// Internal: the manifest's "risk" object -> Policy (validated).
#pragma once

#include <medinfer/risk.hpp>

#include "core/json_util.hpp"

namespace medinfer::risk::detail {
Policy policy_from_json(const medinfer::detail::Json& obj, const std::string& where);
/// The manifest's "risk" for `label_count` labels: one object (the same policy for every label) or an
/// array of exactly `label_count` objects, one per label in label order.
std::vector<Policy> policies_from_json(const medinfer::detail::Json& value, const std::string& where,
                                       std::size_t label_count);
}  // namespace medinfer::risk::detail
