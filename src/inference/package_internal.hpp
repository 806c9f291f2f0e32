// Internal: the library's access to a package's manifest as parsed at open (parsed once, kept).
#pragma once

#include <medinfer/model_package.hpp>

#include "core/json_util.hpp"

namespace medinfer::detail {

struct PackageAccess {
  /// manifest.json as parsed by ModelPackage::open (the same bytes that were hashed and signed).
  static const Json& manifest(const ModelPackage& package) noexcept;
};

}  // namespace medinfer::detail
