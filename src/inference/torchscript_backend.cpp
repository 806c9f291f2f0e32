// The TorchScript backend. The only translation unit of the library that includes LibTorch
// (13-20 s to compile): keep it that way. Engine (engine.cpp) does the shape checks and warm-up.
#include <medinfer/error.hpp>
#include <medinfer/engine.hpp>

#include "inference/backends.hpp"

#include "core/log_internal.hpp"
#include "core/module_versions.hpp"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <cstdlib>
#include <regex>
#include <sstream>

namespace medinfer {
namespace detail {
std::string torch_version() { return TORCH_VERSION; }
bool torch_cuda_compiled() { return at::detail::getCUDAHooks().hasCUDART(); }
bool torch_cuda_available() { return torch::cuda::is_available(); }
}  // namespace detail

namespace {

torch::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  static const std::regex cuda(R"(^cuda(:(\d{1,2}))?$)");
  std::smatch m;
  if (!std::regex_match(spec, m, cuda)) {
    throw Error(ErrorCode::kInvalidArgument, "EngineOptions::device: '" + spec + "' is not 'cpu' or 'cuda:N'");
  }
  if (!detail::torch_cuda_compiled()) {
    throw Error(ErrorCode::kUnsupported, "EngineOptions::device: '" + spec +
                                             "' requested, but this LibTorch build has no CUDA support");
  }
  const int index = m[2].matched ? std::stoi(m[2].str()) : 0;
  if (!torch::cuda::is_available() || index >= static_cast<int>(torch::cuda::device_count())) {
    throw Error(ErrorCode::kUnsupported, "EngineOptions::device: '" + spec + "': no such CUDA device (" +
                                             std::to_string(torch::cuda::device_count()) + " available)");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

class TorchScriptBackend final : public Backend {
 public:
  TorchScriptBackend(torch::jit::Module module, torch::Device device, bool half, std::string name)
      : module_(std::move(module)), device_(device), half_(half), name_(std::move(name)) {}

  Tensor run(const Tensor& input) const override {
    // oneDNN's kernels (optimize_for_inference) open OpenMP regions sized by the calling thread's own
    // OpenMP setting, which a host thread never had set: align it with LibTorch's intra-op count once
    // per thread, or each run on a new host thread spreads tiny convolutions over every core.
    at::internal::lazy_init_num_threads();
    c10::InferenceMode guard;
    // A view of the caller's buffer: forward() does not write to its inputs.
    const torch::Tensor view =
        torch::from_blob(const_cast<float*>(input.data.data()), input.shape, torch::kFloat32);
    torch::jit::IValue out;
    try {
      // Module::forward is const-callable from many threads on a frozen, eval-mode module.
      auto& module = const_cast<torch::jit::Module&>(module_);
      out = module.forward({half_ ? view.to(device_, torch::kHalf) : view.to(device_)});
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInternal, name_ + ": the model failed on input " + input.shape_string() + ": " +
                                            e.what_without_backtrace());
    }
    if (!out.isTensor()) {
      throw Error(ErrorCode::kInvalidArgument,
                  name_ + ": the model returned a " + out.tagKind() + ", expected one tensor of logits");
    }
    const torch::Tensor t = out.toTensor().to(torch::kCPU, torch::kFloat32).contiguous();
    Tensor result;
    result.shape.assign(t.sizes().begin(), t.sizes().end());
    result.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    return result;
  }

  std::string description() const override {
    return "torchscript on " + device_.str() + (half_ ? " (float16)" : "");
  }

 private:
  torch::jit::Module module_;
  torch::Device device_;
  bool half_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Backend> detail::make_torchscript_backend(const ModelPackage& package,
                                                          const EngineOptions& options) {
  const torch::Device device = parse_device(options.device);
  const std::string name = package.identity().name + " " + package.identity().version;
  if (options.half_precision && !device.is_cuda()) {
    throw Error(ErrorCode::kUnsupported, "EngineOptions::half_precision: float16 runs on a CUDA device only, not on '" +
                                             options.device + "'");
  }
  if (options.intra_op_threads > 0) at::set_num_threads(options.intra_op_threads);
  if (options.intra_op_threads != 1 && std::getenv("OMP_WAIT_POLICY") == nullptr) {
    // libgomp read its policy when the process started: too late to change it here.
    detail::log(LogLevel::kWarning,
                "EngineOptions::intra_op_threads = {}: LibTorch's OpenMP threads spin-wait between runs and stall when "
                "another process keeps a core busy; start the process with OMP_WAIT_POLICY=PASSIVE, or keep 1 and use "
                "predict_many's workers (docs/benchmarks.md)",
                options.intra_op_threads);
  }
  try {
    // The verified bytes, from memory: LibTorch never opens the package's file itself.
    std::istringstream in(package.model_bytes());
    torch::jit::Module module = torch::jit::load(in, device);
    module.eval();
    if (options.half_precision) module.to(torch::kHalf);
    module = torch::jit::freeze(module);
    module = torch::jit::optimize_for_inference(module);
    return std::make_unique<TorchScriptBackend>(std::move(module), device, options.half_precision, name);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kModelIntegrity,
                name + ": the model file is not a loadable TorchScript module: " + e.what_without_backtrace());
  }
}

}  // namespace medinfer
