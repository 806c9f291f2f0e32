// Internal: the manifest's "risk" object -> Policy (validated).
#pragma once

#include <medinfer/risk.hpp>

#include "core/json_util.hpp"

namespace medinfer::risk::detail {
Policy policy_from_json(const medinfer::detail::Json& obj, const std::string& where);
}  // namespace medinfer::risk::detail
