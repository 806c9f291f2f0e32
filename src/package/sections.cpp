#include "package/sections.hpp"

#include <medinfer/error.hpp>
#include <medinfer/package.hpp>

#include "calibration/calibration_json.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"
#include "inference/package_internal.hpp"
#include "preprocess/spec_json.hpp"
#include "risk/risk_json.hpp"

namespace medinfer {

package::detail::Sections package::detail::load_sections(const ModelPackage& package) {
  const std::string where = package.directory() + "/manifest.json";
  return medinfer::detail::guarded_parse(where, [&] {
    using medinfer::detail::field_path;
    using medinfer::detail::require_member;
    const medinfer::detail::Json& manifest = medinfer::detail::PackageAccess::manifest(package);
    const std::size_t labels = package.labels().size();
    Sections s;
    const medinfer::detail::Json& steps = require_member(manifest, "preprocessing", where);
    s.spec = preprocess::detail::spec_from_json(steps, field_path(where, "preprocessing"));
    s.spec_sha256 = medinfer::detail::sha256_hex(steps.dump());  // nlohmann::json sorts keys: canonical
    s.calibrators = calibration::detail::calibration_from_json(require_member(manifest, "calibration", where),
                                                               field_path(where, "calibration"), package.task(), labels);
    s.policies = risk::detail::policies_from_json(require_member(manifest, "risk", where), field_path(where, "risk"),
                                                  labels);
    const auto member = [&](const char* key) { return manifest.contains(key) ? &manifest.at(key) : nullptr; };
    s.series = series_from_json(member("series"), field_path(where, "series"), package.task(), labels);
    s.selection = selection_from_json(member("series_selection"), field_path(where, "series_selection"));
    const bool volumetric = package.input_shape().size() == 5;
    if (volumetric && s.series.declared) {
      throw Error(ErrorCode::kInvalidArgument, field_path(where, "series") +
                                                   ": a 3D package (input.shape [1, C, D, H, W]) runs once per series: "
                                                   "it has no slice aggregation");
    }
    if (!volumetric && s.spec.is_volumetric()) {
      throw Error(ErrorCode::kInvalidArgument, field_path(where, "preprocessing") +
                                                   ": volume steps in a 2D package (input.shape [N, C, H, W])");
    }
    return s;
  });
}

ModelPackage verify_package(const std::string& package_dir, const PackageOptions& options) {
  ModelPackage package = ModelPackage::open(package_dir, options);
  (void)package::detail::load_sections(package);
  return package;
}

}  // namespace medinfer
