// Each module reports the version of the dependency it owns, so build_info() needs none of them.
#pragma once

#include <string>

namespace medinfer::detail {

std::string torch_version();      // inference/torchscript_backend.cpp
bool torch_cuda_compiled();       // inference/torchscript_backend.cpp
bool torch_cuda_available();      // inference/torchscript_backend.cpp
std::string opencv_version();     // preprocess/preprocess.cpp
std::string dcmtk_version();      // dicom/read_image.cpp

}  // namespace medinfer::detail
