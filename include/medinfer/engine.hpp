// The Engine that runs a verified package's model, the Backend seam behind it, and the dynamic batcher's
// options. No LibTorch type appears here.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/tensor.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace medinfer {

/// The optional in-process dynamic batcher: single-image predict() calls from many threads are
/// merged into one model run of up to `max_batch_size` images; a batch starts when it is full or when
/// its oldest request has waited `max_delay_us`. At most `max_queue` requests wait; beyond that
/// predict() fails at once with kOverloaded (nothing is queued unboundedly). Off when
/// max_batch_size <= 1. Choose the size by measurement (docs/benchmarks.md: 4 for the demo model here).
struct BatchingOptions {
  int max_batch_size = 0;   ///< 0 or 1: off; else 2..256
  int max_delay_us = 2000;  ///< 0..1,000,000
  int max_queue = 256;      ///< 1..100,000
};

struct EngineOptions {
  /// "cpu" or "cuda:N" ("cuda" = "cuda:0"). CUDA fails with kUnsupported in a build whose LibTorch has
  /// no CUDA, or when device N does not exist.
  std::string device = "cpu";
  /// LibTorch intra-op threads (process-wide in LibTorch: the last engine opened sets it); 0 leaves
  /// LibTorch's setting alone. 1 by default: with requests arriving from several host threads (or a
  /// decode running beside inference), more threads per forward oversubscribe the cores; measured in
  /// docs/benchmarks.md. Raise it for one large model serving one caller at a time.
  int intra_op_threads = 1;
  /// Run the model in float16 on a CUDA device (inputs and outputs stay float32 at the API).
  /// kUnsupported on "cpu": float16 brings nothing on CPU.
  bool half_precision = false;
};

/// A model runtime behind Engine. The TorchScript backend is built in (format "torchscript"); a host
/// or a later release adds another (ONNX Runtime, TensorRT, ...) by implementing this class and
/// registering a factory for its manifest "model.format": the pipeline, batcher, calibration and risk
/// code never see which backend runs. No LibTorch type appears here.
class MEDINFER_API Backend {
 public:
  virtual ~Backend();
  /// Runs a batch. `input` is float32 with shape {N, ...the package's input.shape without N}, N >= 1,
  /// already checked by Engine. Returns shape {N, output_count} (Engine checks it). Called from many
  /// threads at once: must be thread-safe. Throw Error (kInternal when the runtime fails); any other
  /// std::exception is turned into Error(kInternal) by Engine, naming the format.
  virtual Tensor run(const Tensor& input) const = 0;
  /// For logs and audit records, e.g. "torchscript on cpu".
  virtual std::string description() const = 0;
};

/// Makes a backend for a verified package (its model bytes: `package.model_bytes()`; a backend must
/// not read the package's files again). Throw Error: kModelIntegrity for bytes that are not a model of
/// this format, kUnsupported for options the backend cannot honour (a device, half precision).
using BackendFactory = std::function<std::unique_ptr<Backend>(const ModelPackage&, const EngineOptions&)>;

/// Registers `factory` for manifest "model.format" == `format` (process-wide; thread-safe; a later
/// registration of the same format replaces the earlier one for engines opened afterwards).
/// Throws Error(kInvalidArgument) for an empty format or factory.
MEDINFER_API void register_backend(const std::string& format, BackendFactory factory);
/// The formats Engine::open can run now, sorted ("torchscript" is always among them).
MEDINFER_API std::vector<std::string> backend_formats();

/// Runs a package's model through the backend registered for its "model.format". Whatever the
/// backend, Engine checks input shapes before and output shapes after every run, and warms the model
/// up twice on the declared input shape at open (a model that rejects its own declared input fails at
/// open, not at the first patient). The TorchScript backend freezes the module and optimises it for
/// inference at open, and runs it in inference mode. Move-only; run() is thread-safe.
class MEDINFER_API Engine {
 public:
  /// Throws Error with kUnsupported (no backend for the package's model.format; device; half
  /// precision), kInvalidArgument (bad options; the model rejects the declared input shape or returns
  /// a different number of outputs than declared), kModelIntegrity (the verified bytes are not a model
  /// the backend can load).
  static Engine open(const ModelPackage& package, const EngineOptions& options = {});

  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  /// Runs the model on `input` (shape N, C, H, W matching the package's input shape except N).
  /// Returns shape {N, output_count}, every value finite. Throws Error(kInvalidArgument) for a wrong
  /// shape or data size, Error(kInternal) if the backend fails or returns a NaN or infinite logit.
  Tensor run(const Tensor& input) const;
  /// The backend's description, e.g. "torchscript on cpu".
  const std::string& description() const noexcept;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
