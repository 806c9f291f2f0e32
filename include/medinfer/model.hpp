// Model packages (manifest.json + TorchScript + hashes, verified before load) and the Engine that runs them.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/tensor.hpp>

#include <cstdint>
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
  /// The number of values the model outputs per image ("output.count").
  std::int64_t output_count() const noexcept;
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
  /// "cpu". ("cuda:N" fails with kUnsupported in a build whose LibTorch has no CUDA.)
  std::string device = "cpu";
  /// LibTorch intra-op threads; 0 leaves LibTorch's setting alone. Note LibTorch's setting is
  /// process-wide.
  int intra_op_threads = 0;
};

/// Runs a package's model. The TorchScript module is frozen and optimised for inference at open and
/// warmed up once on the declared input shape. Move-only; run() is thread-safe.
class MEDINFER_API Engine {
 public:
  /// Throws Error with kInvalidArgument (the model rejects the declared input shape or returns a
  /// different number of outputs than declared), kUnsupported (device), kModelIntegrity (the verified
  /// bytes are not a TorchScript archive).
  static Engine open(const ModelPackage& package, const EngineOptions& options = {});

  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  /// Runs the model on `input` (shape N, C, H, W matching the package's input shape except N).
  /// Returns shape {N, output_count}. Throws Error(kInvalidArgument) for a wrong shape or data size,
  /// Error(kInternal) if LibTorch fails.
  Tensor run(const Tensor& input) const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
