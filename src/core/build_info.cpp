#include <medinfer/build_info.hpp>

#include "core/module_versions.hpp"

namespace medinfer {

const char* version() noexcept { return MEDINFER_VERSION_STRING; }

BuildInfo build_info() {
  BuildInfo info;
  info.version = MEDINFER_VERSION_STRING;
  info.libtorch_version = detail::torch_version();
  info.opencv_version = detail::opencv_version();
  info.dcmtk_version = detail::dcmtk_version();
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#endif
  info.cuda_compiled = detail::torch_cuda_compiled();
  info.cuda_available = detail::torch_cuda_available();
  return info;
}

}  // namespace medinfer
