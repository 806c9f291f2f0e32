// A model package opened and verified: manifest.json, its signature and every file's SHA-256, checked
// before a byte reaches a model runtime. The package's sections (preprocessing, calibration, risk) are
// checked by verify_package (package.hpp) and Pipeline::open.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/model_identity.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace medinfer {

namespace detail {
struct PackageAccess;  // the library's own access to the parsed manifest
}  // namespace detail

/// What a host requires of a package's signature (manifest.sig: Ed25519 over manifest.json's exact
/// bytes). The manifest pins every other file's SHA-256, so one signature covers the package.
///
/// | keys pinned | no manifest.sig | signed by an unpinned key | signature does not verify | valid |
/// |---|---|---|---|---|
/// | none | opens, warning (log) | opens, warning (log: not verified) | opens, warning (not verified) | opens, warning (not verified) |
/// | some | refused (kModelIntegrity) unless `allow_unsigned` | refused | refused | opens |
///
/// `require_signature` refuses everything but the last column, and also refuses when no key is pinned.
struct PackageOptions {
  /// Ed25519 public keys (PEM text, "-----BEGIN PUBLIC KEY-----") the host trusts to sign packages.
  /// Each must be one: anything else (empty, a private key, garbage) is kInvalidArgument naming it.
  std::vector<std::string> trusted_public_keys;
  /// Refuse a package without a valid signature by one of the trusted keys.
  bool require_signature = false;
  /// With keys pinned, still open an unsigned package (with a warning). Pinning a key otherwise means
  /// signatures are required: stripping manifest.sig must not defeat the pin.
  bool allow_unsigned = false;
};

/// The coded concept a label stands for, from the manifest's label object {"name", "code_value",
/// "coding_scheme", "code_meaning"} (e.g. {"233604007", "SCT", "Pneumonia"}): what DICOM SR and FHIR
/// reports file the finding under. All empty for a label given as a plain name.
struct LabelCode {
  std::string code_value;
  std::string coding_scheme;  ///< DICOM Coding Scheme Designator: "SCT", "DCM", "LN", "RADLEX", ...
  std::string code_meaning;
  bool empty() const noexcept { return code_value.empty(); }
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
  /// The same, with signature checks, done on manifest.json before any other file is read, under the
  /// policy of PackageOptions' table (kModelIntegrity when refused). Throws kInvalidArgument for a
  /// trusted key that is not an Ed25519 public key, or a malformed manifest.sig.
  static ModelPackage open(const std::string& directory, const PackageOptions& options);

  ModelPackage(ModelPackage&&) noexcept;
  ModelPackage& operator=(ModelPackage&&) noexcept;
  ~ModelPackage();

  const ModelIdentity& identity() const noexcept;
  const std::string& directory() const noexcept;
  /// The manifest's text, exactly as hashed.
  const std::string& manifest_text() const noexcept;
  /// The manifest's "input.shape": {N, C, H, W} for a 2D model (e.g. {1, 1, 64, 64}), {N, C, D, H, W} for a 3D one.
  const std::vector<std::int64_t>& input_shape() const noexcept;
  /// The number of values the model outputs per image ("output.count"): 1 for binary, the number of
  /// labels otherwise.
  std::int64_t output_count() const noexcept;
  Task task() const noexcept;
  /// The manifest's "labels": one name per output, in output order.
  const std::vector<std::string>& labels() const noexcept;
  /// One per label, in label order: the label's code from the manifest (empty when it has none).
  const std::vector<LabelCode>& label_codes() const noexcept;
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
  friend struct detail::PackageAccess;
  struct Impl;
  explicit ModelPackage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// SHA-256 (lower-case hex) of a file's bytes: the value a manifest's "files" map holds, for tools
/// that write packages. Throws Error(kNotFound/kIo).
MEDINFER_API std::string sha256_file(const std::string& path);

}  // namespace medinfer
