// Internal: the backends built into the library. Only torchscript_backend.cpp includes LibTorch.
#pragma once

#include <medinfer/engine.hpp>

#include <memory>

namespace medinfer::detail {
std::unique_ptr<Backend> make_torchscript_backend(const ModelPackage& package, const EngineOptions& options);
}  // namespace medinfer::detail
