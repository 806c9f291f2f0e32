// Model packages (manifest.json + TorchScript + hashes, verified before load) and the Engine that runs them.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/tensor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace medinfer {

/// Which model produced a result: every Result and audit record carries it.
struct ModelIdentity {
  std::string name;
  std::string version;
  /// SHA-256 (hex) of manifest.json. The manifest pins the SHA-256 of every other file in the
  /// package, so this one hash identifies the model, its preprocessing, calibration and risk policy.
  std::string sha256;
};

/// What the model outputs, and so how its outputs become findings.
/// | task | outputs | probability of label k |
/// |---|---|---|
/// | binary | 1 logit, 1 label | calibrator(logit) |
/// | multi-label | one logit per label (labels are independent) | calibrator_k(logit_k) |
/// | multi-class | one logit per label (exactly one is true) | softmax(logits / T)_k |
enum class Task { kBinary, kMultiLabel, kMultiClass };
/// "binary", "multi-label", "multi-class".
MEDINFER_API const char* to_string(Task task) noexcept;

/// What a host requires of a package's signature (manifest.sig: Ed25519 over manifest.json's exact
/// bytes). The manifest pins every other file's SHA-256, so one signature covers the package.
struct PackageOptions {
  /// Ed25519 public keys (PEM text, "-----BEGIN PUBLIC KEY-----") the host trusts to sign packages.
  std::vector<std::string> trusted_public_keys;
  /// Refuse a package without a valid signature by one of the trusted keys.
  bool require_signature = false;
};

/// An opened, verified model package directory. Opening reads manifest.json, checks its required
/// fields, then reads every file it lists into memory and checks its SHA-256: no byte of a package
/// reaches LibTorch before that check passes, and LibTorch later reads the verified bytes from memory,
/// not the file again. Move-only; const member functions are thread-safe.
class MEDINFER_API ModelPackage {
 public:
  /// Throws Error with kNotFound (no directory or no manifest.json), kInvalidArgument (malformed
  /// manifest: names the field), kModelIntegrity (a listed file missing, modified, or outside the
  /// package; the model file not listed), kIo.
  static ModelPackage open(const std::string& directory);
  /// The same, with signature checks, done on manifest.json before any other file is read: a
  /// present signature is verified against the trusted keys (kModelIntegrity when it does not verify,
  /// or when its key is not trusted); with `require_signature`, an unsigned package or an empty
  /// trusted list is refused (kModelIntegrity). Throws kInvalidArgument for a trusted key that is not an
  /// Ed25519 public key, or a malformed manifest.sig.
  static ModelPackage open(const std::string& directory, const PackageOptions& options);

  ModelPackage(ModelPackage&&) noexcept;
  ModelPackage& operator=(ModelPackage&&) noexcept;
  ~ModelPackage();

  const ModelIdentity& identity() const noexcept;
  const std::string& directory() const noexcept;
  /// The manifest's text, exactly as hashed.
  const std::string& manifest_text() const noexcept;
  /// The manifest's "input.shape", e.g. {1, 1, 64, 64}.
  const std::vector<std::int64_t>& input_shape() const noexcept;
  /// The number of values the model outputs per image ("output.count"): 1 for binary, the number of
  /// labels otherwise.
  std::int64_t output_count() const noexcept;
  Task task() const noexcept;
  /// The manifest's "labels": one name per output, in output order.
  const std::vector<std::string>& labels() const noexcept;
  /// The manifest's "model.format" (e.g. "torchscript"): which Backend runs the model.
  const std::string& model_format() const noexcept;
  /// The manifest's "intended_use" text (empty when absent): what the model may be used for.
  const std::string& intended_use() const noexcept;
  /// The verified bytes of the model file ("model.file").
  const std::string& model_bytes() const noexcept;
  /// The id (SHA-256 of the raw public key, hex) of the trusted key whose signature verified at open;
  /// empty when the package was not verified as signed.
  const std::string& signer_key_id() const noexcept;

 private:
  struct Impl;
  explicit ModelPackage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Tools for package authors (the `medinfer package` command uses them).
namespace package {
struct SigningKey {
  std::string private_pem;  ///< keep secret (PKCS#8 PEM)
  std::string public_pem;   ///< give to hosts to pin
};
/// A new Ed25519 key pair.
MEDINFER_API SigningKey generate_signing_key();
/// The id hosts see for a key (SHA-256 of the raw 32-byte public key, hex); public or private PEM.
MEDINFER_API std::string key_id(const std::string& pem);
/// Writes `out_dir` (created; must not exist or be empty): the model file copied as the manifest's
/// "model.file" (default: the model's own file name), every other file the template's "files" map
/// names copied from beside the template, and manifest.json with "files" holding each file's
/// SHA-256. The result is opened (verified) before returning. Throws kInvalidArgument (a bad
/// template: names the field), kNotFound, kIo, kModelIntegrity.
MEDINFER_API void create(const std::string& model_file, const std::string& manifest_template,
                         const std::string& out_dir);
/// Signs `directory`'s manifest.json with an Ed25519 private key (PEM), writing manifest.sig.
/// Returns the key id. The package is verified (hashes) first.
MEDINFER_API std::string sign(const std::string& directory, const std::string& private_pem);
}  // namespace package

/// SHA-256 (lower-case hex) of a file's bytes: the value a manifest's "files" map holds, for tools
/// that write packages. Throws Error(kNotFound/kIo).
MEDINFER_API std::string sha256_file(const std::string& path);

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
  /// Returns shape {N, output_count}. Throws Error(kInvalidArgument) for a wrong shape or data size,
  /// Error(kInternal) if LibTorch fails.
  Tensor run(const Tensor& input) const;
  /// The backend's description, e.g. "torchscript on cpu".
  const std::string& description() const noexcept;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
