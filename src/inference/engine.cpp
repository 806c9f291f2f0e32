// Engine: the backend-independent half. Picks the backend registered for the package's model.format,
// checks every input and output shape (and that every logit is finite), warms up at open. Knows nothing
// of LibTorch.
#include <medinfer/error.hpp>
#include <medinfer/engine.hpp>

#include "core/log_internal.hpp"
#include "inference/backends.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

namespace medinfer {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, BackendFactory> factories{{"torchscript", &detail::make_torchscript_backend}};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Backend::~Backend() = default;

void register_backend(const std::string& format, BackendFactory factory) {
  if (format.empty()) throw Error(ErrorCode::kInvalidArgument, "register_backend: the format name is empty");
  if (!factory) throw Error(ErrorCode::kInvalidArgument, "register_backend: the factory for '" + format + "' is empty");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.factories[format] = std::move(factory);
}

std::vector<std::string> backend_formats() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& entry : r.factories) names.push_back(entry.first);
  return names;
}

struct Engine::Impl {
  std::string format;
  std::unique_ptr<Backend> backend;
  std::vector<std::int64_t> input_shape;  // as declared, N first
  std::int64_t output_count = 0;
  std::string name;
  std::string description;
};

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

Engine Engine::open(const ModelPackage& package, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->input_shape = package.input_shape();
  impl->output_count = package.output_count();
  impl->name = package.identity().name + " " + package.identity().version;
  if (options.intra_op_threads < 0) {
    throw Error(ErrorCode::kInvalidArgument, "EngineOptions::intra_op_threads must be >= 0");
  }
  BackendFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    const auto it = r.factories.find(package.model_format());
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    throw Error(ErrorCode::kUnsupported, package.directory() + "/manifest.json: model.format: '" +
                                             package.model_format() + "' has no backend in this process (registered: " +
                                             joined(backend_formats()) + ")");
  }
  const auto start = std::chrono::steady_clock::now();
  impl->format = package.model_format();
  try {
    impl->backend = factory(package, options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // a host's backend: its own exception types become an Error
    throw Error(ErrorCode::kInternal, impl->name + ": the '" + impl->format + "' backend failed to load the model: " + e.what());
  }
  if (!impl->backend) {
    throw Error(ErrorCode::kInternal, "the backend factory for '" + package.model_format() + "' returned no backend");
  }
  impl->description = impl->backend->description();
  Engine engine(std::move(impl));
  // Warm-up on the declared shape, through the same checks as every run: specialising runtimes (the
  // TorchScript profiling executor) settle on the first runs, and a model that does not accept its own
  // declared input, or returns the wrong number of outputs, fails here, at open.
  Tensor zeros;
  zeros.shape = engine.impl_->input_shape;
  zeros.data.assign(zeros.element_count(), 0.0f);
  for (int i = 0; i < 2; ++i) engine.run(zeros);
  detail::log(LogLevel::kInfo, "engine {} ready ({}) in {:.1f} ms", engine.impl_->name, engine.impl_->description,
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return engine;
}

Tensor Engine::run(const Tensor& input) const {
  const auto& want = impl_->input_shape;
  bool ok = input.shape.size() == want.size() && input.shape[0] >= 1;
  for (std::size_t i = 1; ok && i < want.size(); ++i) ok = input.shape[i] == want[i];
  if (!ok) {
    std::string expected = "[N";
    for (std::size_t i = 1; i < want.size(); ++i) expected += ", " + std::to_string(want[i]);
    throw Error(ErrorCode::kInvalidArgument,
                impl_->name + ": input shape " + input.shape_string() + " does not match the model's " + expected + "]");
  }
  if (input.data.size() != input.element_count()) {
    throw Error(ErrorCode::kInvalidArgument, impl_->name + ": input holds " + std::to_string(input.data.size()) +
                                                 " values but shape " + input.shape_string() + " needs " +
                                                 std::to_string(input.element_count()));
  }
  Tensor out;
  try {
    out = impl_->backend->run(input);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, impl_->name + ": the '" + impl_->format + "' backend failed on input " +
                                          input.shape_string() + ": " + e.what());
  }
  if (out.shape != std::vector<std::int64_t>{input.shape[0], impl_->output_count} ||
      out.data.size() != out.element_count()) {
    throw Error(ErrorCode::kInvalidArgument,
                impl_->name + ": the model returned shape " + out.shape_string() + " (" +
                    std::to_string(out.data.size()) + " values) for input " + input.shape_string() + ", expected [" +
                    std::to_string(input.shape[0]) + ", " + std::to_string(impl_->output_count) +
                    "] (manifest output.count)");
  }
  // A NaN or infinite logit is the model's failure, never a score: refused here, for every caller.
  for (std::size_t i = 0; i < out.data.size(); ++i) {
    if (!std::isfinite(out.data[i])) {
      const auto count = static_cast<std::size_t>(impl_->output_count);
      throw Error(ErrorCode::kInternal, impl_->name + ": the model produced a non-finite logit (image " +
                                            std::to_string(i / count) + ", output " + std::to_string(i % count) + ")");
    }
  }
  return out;
}

const std::string& Engine::description() const noexcept { return impl_->description; }

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

}  // namespace medinfer
