// Tools for package authors and the one definition of a valid package: what verify_package,
// package::create, package::sign, package::write_recalibrated and Pipeline::open all check.
#pragma once

#include <medinfer/calibration.hpp>
#include <medinfer/export.hpp>
#include <medinfer/model_package.hpp>

#include <string>
#include <vector>

namespace medinfer {

/// Checks a package as Pipeline::open does, short of loading the model: integrity and signature
/// (ModelPackage::open with `options`), then the manifest's preprocessing, calibration and risk
/// sections for the package's task and labels. Throws what Pipeline::open would (kInvalidArgument
/// naming the field, kModelIntegrity, ...). `medinfer package verify` uses it.
MEDINFER_API ModelPackage verify_package(const std::string& package_dir, const PackageOptions& options = {});

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
/// The id of a key a host pins, which must be an Ed25519 public key (PEM): kInvalidArgument "not an
/// Ed25519 public key in PEM form" for anything else, and "a private key: ..." for a signing key.
MEDINFER_API std::string public_key_id(const std::string& public_pem);
/// Writes `out_dir` (created; must not exist or be empty): the model file copied as the manifest's
/// "model.file" (default: the model's own file name), every other file the template's "files" map
/// names copied from beside the template, and manifest.json with "files" holding each file's
/// SHA-256. The result is checked with verify_package before returning, so nothing create writes can
/// fail to open. Throws kInvalidArgument (a bad
/// template: names the field), kNotFound, kIo, kModelIntegrity.
MEDINFER_API void create(const std::string& model_file, const std::string& manifest_template,
                         const std::string& out_dir);
/// Signs `directory`'s manifest.json with an Ed25519 private key (PEM), writing manifest.sig.
/// Returns the key id. The package is checked with verify_package first: only a whole, valid package is
/// signed. Throws kInvalidArgument "not an Ed25519 private key" for a malformed key.
MEDINFER_API std::string sign(const std::string& directory, const std::string& private_pem);

/// The next version of a package after recalibration: the manifest's "calibration" replaced by
/// `calibrators` in the form the task needs (binary: one calibrator; multi-label: one per label, in
/// label order; multi-class: one temperature, for softmax(z / T)), the version's minor number raised
/// (MAJOR.(MINOR+1).0), `report_json` (a JSON object) stored as calibration_report.json, every other
/// file copied and checked against its pinned SHA-256. `out_dir` must not exist or be empty. The new
/// package is checked with verify_package before returning; its identity is returned. Throws
/// kInvalidArgument (calibrators that do not fit the task, naming it; a bad report), kModelIntegrity
/// (a file changed while it was copied), kIo.
MEDINFER_API ModelIdentity write_recalibrated(const std::string& package_dir,
                                             const std::vector<calibration::Calibrator>& calibrators,
                                             const std::string& report_json, const std::string& out_dir);
/// The version a recalibrated package gets: "1.1.0" -> "1.2.0". kInvalidArgument for a version that is
/// not MAJOR.MINOR.PATCH.
MEDINFER_API std::string next_minor_version(const std::string& version);
}  // namespace package

}  // namespace medinfer
