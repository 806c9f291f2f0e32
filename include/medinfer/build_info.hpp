// What this libmedinfer was built with, for support tickets and `medinfer version`.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/version.hpp>

#include <string>

namespace medinfer {

struct BuildInfo {
  std::string version;          ///< medinfer's semantic version, e.g. "0.1.0"
  std::string libtorch_version; ///< LibTorch it was compiled against
  std::string opencv_version;
  std::string dcmtk_version;
  std::string compiler;
  bool cuda_compiled = false;   ///< LibTorch was built with CUDA
  bool cuda_available = false;  ///< ... and a CUDA device is usable now
};

/// The running library's version string ("0.1.0"); compare with MEDINFER_VERSION_STRING to detect
/// a header/library mismatch.
MEDINFER_API const char* version() noexcept;

/// Versions of medinfer and its dependencies, and whether CUDA is available. Thread-safe.
MEDINFER_API BuildInfo build_info();

}  // namespace medinfer
