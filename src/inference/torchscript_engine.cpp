// The TorchScript backend. The only translation unit of the library that includes LibTorch
// (13-20 s to compile): keep it that way.
#include <medinfer/error.hpp>
#include <medinfer/model.hpp>

#include "core/log_internal.hpp"
#include "core/module_versions.hpp"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <sstream>

namespace medinfer {
namespace detail {
std::string torch_version() { return TORCH_VERSION; }
bool torch_cuda_compiled() { return at::detail::getCUDAHooks().hasCUDART(); }
bool torch_cuda_available() { return torch::cuda::is_available(); }
}  // namespace detail

struct Engine::Impl {
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
  std::vector<std::int64_t> input_shape;  // N, C, H, W as declared
  std::int64_t output_count = 0;
  std::string name;
};

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

std::string shape_string(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

// Runs the module and checks the output is {N, output_count}. Translates LibTorch's exceptions.
// A free function (not a member of Engine::Impl) so that no LibTorch type appears in an exported symbol.
torch::Tensor forward(torch::jit::Module& module, const torch::Device& device, std::int64_t output_count,
                      const std::string& name, const torch::Tensor& input) {
  c10::InferenceMode guard;
  torch::jit::IValue out;
  try {
    out = module.forward({input.to(device)});
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kInternal, name + ": the model failed on input " + shape_string(input.sizes()) +
                                          ": " + e.what_without_backtrace());
  }
  if (!out.isTensor()) {
    throw Error(ErrorCode::kInvalidArgument, name + ": the model returned a " + out.tagKind() +
                                                 ", expected one tensor of logits");
  }
  torch::Tensor t = out.toTensor();
  if (t.dim() != 2 || t.size(0) != input.size(0) || t.size(1) != output_count) {
    throw Error(ErrorCode::kInvalidArgument,
                name + ": the model returned shape " + shape_string(t.sizes()) + " for input " +
                    shape_string(input.sizes()) + ", expected [" + std::to_string(input.size(0)) + ", " +
                    std::to_string(output_count) + "] (manifest output.count)");
  }
  return t.to(torch::kCPU, torch::kFloat32).contiguous();
}

}  // namespace

Engine Engine::open(const ModelPackage& package, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->device = parse_device(options.device);
  impl->input_shape = package.input_shape();
  impl->output_count = package.output_count();
  impl->name = package.identity().name + " " + package.identity().version;
  if (options.intra_op_threads < 0) {
    throw Error(ErrorCode::kInvalidArgument, "EngineOptions::intra_op_threads must be >= 0");
  }
  if (options.intra_op_threads > 0) at::set_num_threads(options.intra_op_threads);

  const auto start = std::chrono::steady_clock::now();
  try {
    // The verified bytes, from memory: LibTorch never opens the package's file itself.
    std::istringstream in(package.model_bytes());
    torch::jit::Module module = torch::jit::load(in, impl->device);
    module.eval();
    module = torch::jit::freeze(module);
    impl->module = torch::jit::optimize_for_inference(module);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kModelIntegrity,
                impl->name + ": the model file is not a loadable TorchScript module: " + e.what_without_backtrace());
  }
  // Warm-up on the declared shape: the profiling executor specialises on the first runs, and a model
  // that does not accept its own declared input fails here, at open, not at the first patient.
  const torch::Tensor zeros = torch::zeros(impl->input_shape, torch::kFloat32);
  for (int i = 0; i < 2; ++i) forward(impl->module, impl->device, impl->output_count, impl->name, zeros);
  detail::log(LogLevel::kInfo, "engine {} ready on {} in {:.1f} ms", impl->name, impl->device.str(),
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return Engine(std::move(impl));
}

Tensor Engine::run(const Tensor& input) const {
  const auto& want = impl_->input_shape;
  bool ok = input.shape.size() == want.size() && input.shape[0] >= 1;
  for (std::size_t i = 1; ok && i < want.size(); ++i) ok = input.shape[i] == want[i];
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument, impl_->name + ": input shape " + input.shape_string() +
                                                 " does not match the model's [N, " + std::to_string(want[1]) + ", " +
                                                 std::to_string(want[2]) + ", " + std::to_string(want[3]) + "]");
  }
  if (input.data.size() != input.element_count()) {
    throw Error(ErrorCode::kInvalidArgument, impl_->name + ": input holds " + std::to_string(input.data.size()) +
                                                 " values but shape " + input.shape_string() + " needs " +
                                                 std::to_string(input.element_count()));
  }
  // A view of the caller's buffer: forward() does not write to its inputs.
  const torch::Tensor view = torch::from_blob(const_cast<float*>(input.data.data()), input.shape, torch::kFloat32);
  const torch::Tensor out = forward(impl_->module, impl_->device, impl_->output_count, impl_->name, view);
  Tensor result;
  result.shape = {out.size(0), out.size(1)};
  result.data.assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  return result;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

}  // namespace medinfer
