// Opening a model package: parse the manifest, then verify every listed file's SHA-256 from bytes
// read into memory, so what LibTorch later parses is exactly what was verified (no re-read, no TOCTOU).
#include <medinfer/error.hpp>
#include <medinfer/model_package.hpp>

#include "inference/package_internal.hpp"

#include "core/file_util.hpp"
#include "core/json_util.hpp"
#include "core/log_internal.hpp"
#include "core/sha256.hpp"
#include "core/signing.hpp"

#include <medinfer/version.hpp>

#include <filesystem>
#include <regex>
#include <algorithm>
#include <set>
#include <tuple>

namespace medinfer {
namespace {

namespace fs = std::filesystem;
using detail::Json;

constexpr std::uint64_t kMaxManifestBytes = 1u << 20;
constexpr std::uint64_t kMaxModelBytes = 2ull << 30;

[[noreturn]] void integrity(const std::string& what) { throw Error(ErrorCode::kModelIntegrity, what); }

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A listed file must be a plain relative path that stays inside the package, symlinks resolved.
fs::path checked_member_path(const fs::path& root_canonical, const std::string& rel, const std::string& where) {
  const fs::path p(rel);
  if (rel.empty() || p.is_absolute() || rel.find('\\') != std::string::npos) {
    integrity(where + ": '" + rel + "' is not a relative path inside the package");
  }
  for (const auto& part : p) {
    if (part == "..") integrity(where + ": '" + rel + "' escapes the package ('..')");
  }
  std::error_code ec;
  const fs::path full = root_canonical / p;
  if (!fs::exists(fs::symlink_status(full, ec))) integrity(where + ": '" + rel + "' is listed but missing");
  const fs::path resolved = fs::canonical(full, ec);
  if (ec) integrity(where + ": '" + rel + "' cannot be resolved: " + ec.message());
  const auto rel_to_root = resolved.lexically_relative(root_canonical);
  if (rel_to_root.empty() || *rel_to_root.begin() == "..") {
    integrity(where + ": '" + rel + "' resolves outside the package (symlink to " + resolved.string() + ")");
  }
  if (!fs::is_regular_file(resolved, ec)) integrity(where + ": '" + rel + "' is not a regular file");
  return resolved;
}

}  // namespace

struct ModelPackage::Impl {
  ModelIdentity identity;
  std::string directory;
  std::string manifest_text;
  Json manifest;
  std::string model_file;
  std::string model_format;
  std::string model_bytes;
  Task task = Task::kBinary;
  std::vector<std::string> labels;
  std::vector<LabelCode> label_codes;
  std::string intended_use;
  std::vector<std::int64_t> input_shape;
  std::int64_t output_count = 0;
  std::string signer_key_id;
};

namespace {

// manifest.sig: {"algorithm": "Ed25519", "key_id": hex, "signature": base64}, over manifest.json's bytes.
// Returns the verifying key's id, or "" for a package accepted unsigned/unverified.
std::string check_signature(const fs::path& root, const std::string& manifest_text, const PackageOptions& options) {
  const fs::path sig_path = root / "manifest.sig";
  const std::string where = sig_path.string();
  // Every pinned key is a public Ed25519 key, whether or not this package is signed.
  std::vector<std::string> pinned_ids;
  for (std::size_t i = 0; i < options.trusted_public_keys.size(); ++i) {
    pinned_ids.push_back(detail::ed25519_public_key_id(options.trusted_public_keys[i],
                                                      "PackageOptions::trusted_public_keys[" + std::to_string(i) + "]"));
  }
  const bool pinned = !pinned_ids.empty();
  std::error_code ec;
  const auto st = fs::symlink_status(sig_path, ec);
  if (options.require_signature && !pinned) {
    integrity(root.string() + ": a signature is required but no trusted public keys are pinned");
  }
  if (ec || !fs::exists(st)) {
    if (options.require_signature) integrity(root.string() + ": the package is not signed (no manifest.sig) and a signature is required");
    if (pinned && !options.allow_unsigned) {
      integrity(root.string() + ": the package is not signed (no manifest.sig) but trusted keys are pinned: a pinned "
                                "key requires a signature (PackageOptions::allow_unsigned opens unsigned packages)");
    }
    detail::log(LogLevel::kWarning, "model package is not signed (no manifest.sig): opened on its hashes alone");
    return {};
  }
  if (fs::is_symlink(st) || !fs::is_regular_file(st)) integrity(where + ": must be a regular file, not a link");
  const Json sig = detail::parse_json(detail::read_file(where, 64 * 1024), where);
  detail::require_object(sig, where);
  detail::reject_unknown_fields(sig, {"algorithm", "key_id", "signature"}, where);
  const std::string algorithm = detail::get_string(sig, "algorithm", where);
  if (algorithm != "Ed25519") {
    throw Error(ErrorCode::kUnsupported, where + ": algorithm '" + algorithm + "' is not supported (Ed25519)");
  }
  const std::string key_id = detail::get_string(sig, "key_id", where);
  const std::string signature =
      detail::base64_decode(detail::get_string(sig, "signature", where), detail::field_path(where, "signature"));
  if (!pinned) {
    detail::log(LogLevel::kWarning, "model package signed by key {} but no trusted keys are pinned: not verified",
                key_id);
    return {};
  }
  for (std::size_t i = 0; i < pinned_ids.size(); ++i) {
    if (pinned_ids[i] != key_id) continue;
    const std::string what = "PackageOptions::trusted_public_keys[" + std::to_string(i) + "]";
    if (!detail::ed25519_verify(options.trusted_public_keys[i], manifest_text, signature, what)) {
      integrity(where + ": the signature does not verify: manifest.json was modified after signing, or the "
                        "signature is corrupt");
    }
    return key_id;
  }
  integrity(where + ": signed by key " + key_id + ", which is not among the trusted keys");
}

}  // namespace

ModelPackage ModelPackage::open(const std::string& directory) { return open(directory, PackageOptions{}); }

ModelPackage ModelPackage::open(const std::string& directory, const PackageOptions& options) {
  // Nothing but medinfer::Error leaves: a JSON type mismatch deep in a field is kInvalidArgument.
  return detail::guarded_parse(directory + "/manifest.json", [&]() -> ModelPackage {
    std::error_code ec;
    if (!fs::is_directory(directory, ec)) {
      if (ec == std::errc::too_many_symbolic_link_levels) {
        throw Error(ErrorCode::kIo, directory + ": a loop of symbolic links, not a model package directory");
      }
      throw Error(ErrorCode::kNotFound, directory + ": no such model package directory");
    }
    // The directory itself may be reached through a symbolic link (the host chose the path); it is
    // resolved once, and everything in it must then be inside the resolved directory.
    const fs::path root = fs::canonical(directory, ec);
    if (ec) throw Error(ErrorCode::kIo, directory + ": " + ec.message());
    const std::string manifest_path = (root / "manifest.json").string();
    const std::string where = manifest_path;
    const auto manifest_status = fs::symlink_status(manifest_path, ec);
    if (!ec && fs::is_symlink(manifest_status)) {
      integrity(where + ": must be a regular file in the package, not a symbolic link");
    }
    if (!ec && fs::exists(manifest_status) && !fs::is_regular_file(manifest_status)) {
      integrity(where + ": must be a regular file");
    }

    auto impl = std::make_unique<Impl>();
    impl->directory = root.string();
    impl->manifest_text = detail::read_file(manifest_path, kMaxManifestBytes);
    // The signature first: nothing else in the package is read for a package the host would refuse.
    impl->signer_key_id = check_signature(root, impl->manifest_text, options);
    impl->manifest = detail::parse_json(impl->manifest_text, where);
    const Json& m = impl->manifest;
    detail::require_object(m, where);

    const auto format_version = detail::get_integer(m, "format_version", where);
    if (format_version != 1) {
      throw Error(ErrorCode::kUnsupported, where + ": format_version " + std::to_string(format_version) +
                                               " is not supported (this SDK reads 1)");
    }
    impl->identity.name = detail::get_string(m, "name", where);
    impl->identity.version = detail::get_string(m, "version", where);
    static const std::regex semver(R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$)");
    if (!std::regex_match(impl->identity.version, semver)) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": version: '" + impl->identity.version + "' is not a semantic version (MAJOR.MINOR.PATCH)");
    }
    impl->identity.sha256 = detail::sha256_hex(impl->manifest_text);

    const std::string task = detail::get_string(m, "task", where);
    if (task == "binary") {
      impl->task = Task::kBinary;
    } else if (task == "multi-label") {
      impl->task = Task::kMultiLabel;
    } else if (task == "multi-class") {
      impl->task = Task::kMultiClass;
    } else {
      throw Error(ErrorCode::kUnsupported,
                  where + ": task: '" + task + "' is not supported (binary, multi-label, multi-class)");
    }
    if (m.contains("min_sdk_version")) {
      const std::string min_sdk = detail::get_string(m, "min_sdk_version", where);
      static const std::regex triple(R"(^(\d{1,6})\.(\d{1,6})\.(\d{1,6})$)");
      std::smatch v;
      if (!std::regex_match(min_sdk, v, triple)) {
        throw Error(ErrorCode::kInvalidArgument, where + ": min_sdk_version: '" + min_sdk + "' is not MAJOR.MINOR.PATCH");
      }
      const auto wanted = std::make_tuple(std::stoi(v[1]), std::stoi(v[2]), std::stoi(v[3]));
      const auto have = std::make_tuple(MEDINFER_VERSION_MAJOR, MEDINFER_VERSION_MINOR, MEDINFER_VERSION_PATCH);
      if (have < wanted) {
        throw Error(ErrorCode::kUnsupported, where + ": min_sdk_version: the package needs medinfer " + min_sdk +
                                                 " or later; this is " + MEDINFER_VERSION_STRING);
      }
    }
    if (m.contains("intended_use")) impl->intended_use = detail::get_string(m, "intended_use", where);
    const Json& model = detail::require_member(m, "model", where);
    const std::string model_where = detail::field_path(where, "model");
    impl->model_file = detail::get_string(model, "file", model_where);
    // Which backend runs it is Engine's business (register_backend); the package only verifies bytes.
    impl->model_format = detail::get_string(model, "format", model_where);

    const Json& input = detail::require_member(m, "input", where);
    const std::string input_where = detail::field_path(where, "input");
    const Json& shape = detail::require_member(input, "shape", input_where);
    if (!shape.is_array() || (shape.size() != 4 && shape.size() != 5)) {
      throw Error(ErrorCode::kInvalidArgument,
                  input_where + ".shape: expected [N, C, H, W] (a 2D model) or [N, C, D, H, W] (a 3D model)");
    }
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (!shape[i].is_number_integer() || shape[i].get<std::int64_t>() < 1 || shape[i].get<std::int64_t>() > 16384) {
        throw Error(ErrorCode::kInvalidArgument,
                    input_where + ".shape[" + std::to_string(i) + "]: expected an integer in 1..16384");
      }
      impl->input_shape.push_back(shape[i].get<std::int64_t>());
    }
    std::uint64_t elements = 1;
    for (std::size_t i = 1; i < impl->input_shape.size(); ++i) elements *= static_cast<std::uint64_t>(impl->input_shape[i]);
    if (elements > (std::uint64_t{1} << 28)) {
      throw Error(ErrorCode::kInvalidArgument, input_where + ".shape: " + std::to_string(elements) +
                                                   " values per input, above the limit of 2^28 (1 GiB of float32)");
    }
    const Json& output = detail::require_member(m, "output", where);
    const std::string output_where = detail::field_path(where, "output");
    const std::string kind = detail::get_string(output, "kind", output_where);
    if (kind != "logit") {
      throw Error(ErrorCode::kUnsupported, output_where + ".kind: '" + kind + "' is not supported yet (logit)");
    }
    impl->output_count = detail::get_integer(output, "count", output_where);
    const Json& labels = detail::require_member(m, "labels", where);
    if (!labels.is_array() || labels.empty() || labels.size() > 1024) {
      throw Error(ErrorCode::kInvalidArgument, where + ": labels: expected an array of 1..1024 label names");
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const std::string at = where + ": labels[" + std::to_string(i) + "]";
      // A label is its name, or {"name", "code_value", "coding_scheme", "code_meaning"}: the coded
      // concept reports (DICOM SR, FHIR) file the finding under.
      std::string name;
      LabelCode code;
      if (labels[i].is_object()) {
        detail::reject_unknown_fields(labels[i], {"name", "code_value", "coding_scheme", "code_meaning"}, at);
        name = detail::get_string(labels[i], "name", at);
        code.code_value = detail::get_string(labels[i], "code_value", at);
        code.coding_scheme = detail::get_string(labels[i], "coding_scheme", at);
        code.code_meaning = detail::get_string(labels[i], "code_meaning", at);
        // DICOM's limits: Code Value (SH, or Long Code Value UC up to 64 here), Coding Scheme
        // Designator (SH: 16), Code Meaning (LO: 64); no backslash or control characters.
        const auto check = [&](const std::string& value, const char* field, std::size_t max) {
          const bool bad_char = std::any_of(value.begin(), value.end(), [](char c) {
            return c == '\\' || static_cast<unsigned char>(c) < 0x20;
          });
          if (value.empty() || value.size() > max || bad_char) {
            throw Error(ErrorCode::kInvalidArgument, at + "." + field + ": expected 1.." + std::to_string(max) +
                                                         " characters without a backslash or control characters");
          }
        };
        check(code.code_value, "code_value", 64);
        check(code.coding_scheme, "coding_scheme", 16);
        check(code.code_meaning, "code_meaning", 64);
      } else if (labels[i].is_string()) {
        name = labels[i].get<std::string>();
      }
      if (name.empty()) {
        throw Error(ErrorCode::kInvalidArgument, at + ": expected a non-empty string, or an object with a non-empty \"name\"");
      }
      if (!seen.insert(name).second) {
        throw Error(ErrorCode::kInvalidArgument, at + ": '" + name + "' appears twice");
      }
      impl->labels.push_back(std::move(name));
      impl->label_codes.push_back(std::move(code));
    }
    const std::int64_t label_count = static_cast<std::int64_t>(impl->labels.size());
    if (impl->task == Task::kBinary && (impl->output_count != 1 || label_count != 1)) {
      throw Error(ErrorCode::kInvalidArgument, output_where + ".count: a binary task has exactly 1 output and 1 label (count " +
                                                   std::to_string(impl->output_count) + ", " + std::to_string(label_count) +
                                                   " label(s))");
    }
    if (impl->task == Task::kMultiClass && label_count < 2) {
      throw Error(ErrorCode::kInvalidArgument, where + ": labels: a multi-class task needs at least 2 classes");
    }
    if (impl->output_count != label_count) {
      throw Error(ErrorCode::kInvalidArgument, output_where + ".count: " + std::to_string(impl->output_count) +
                                                   " outputs but " + std::to_string(label_count) +
                                                   " labels: a " + to_string(impl->task) + " model has one output per label");
    }

    // The "files" map: every file of the package, each with its SHA-256; the model file among them.
    const Json& files = detail::require_member(m, "files", where);
    const std::string files_where = detail::field_path(where, "files");
    detail::require_object(files, files_where);
    // The listed paths (and the directories that hold them), each checked for form first.
    std::set<fs::path> listed, parents;
    for (auto it = files.begin(); it != files.end(); ++it) {
      const std::string& rel = it.key();
      const std::string at = files_where + "[\"" + rel + "\"]";
      if (!it->is_string() || !is_sha256_hex(it->get<std::string>())) {
        throw Error(ErrorCode::kInvalidArgument, at + ": expected 64 lower-case hex digits (SHA-256)");
      }
      if (rel == "manifest.json" || rel == "manifest.sig") integrity(at + ": the manifest cannot list itself or its signature");
      const fs::path normal = fs::path(rel).lexically_normal();
      listed.insert(normal);
      // (An absolute or escaping path is refused below, by checked_member_path; stop at its root here.)
      for (fs::path q = normal.parent_path(); !q.empty() && q != q.root_path(); q = q.parent_path()) parents.insert(q);
    }
    // The manifest is the whole package: anything else in the directory (a second model, a hidden
    // file, a link) is refused by name, signed or not — before any listed file is read and hashed.
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const fs::path rel = it->path().lexically_relative(root);
      if (rel == "manifest.json" || rel == "manifest.sig" || listed.count(rel) != 0) continue;
      const auto st = it->symlink_status();
      if (fs::is_directory(st) && !fs::is_symlink(st) && parents.count(rel) != 0) continue;
      integrity(root.string() + ": '" + rel.string() + "' is in the package but not listed in manifest.json's \"files\"");
    }
    if (ec) throw Error(ErrorCode::kIo, root.string() + ": cannot list the package: " + ec.message());
    // Integrity: every listed file's bytes against its SHA-256; the model's bytes are kept.
    const fs::path model_normal = fs::path(impl->model_file).lexically_normal();
    bool model_listed = false;
    for (auto it = files.begin(); it != files.end(); ++it) {
      const std::string& rel = it.key();
      const std::string at = files_where + "[\"" + rel + "\"]";
      const fs::path resolved = checked_member_path(root, rel, at);
      std::string bytes = detail::read_file(resolved.string(), kMaxModelBytes);
      const std::string actual = detail::sha256_hex(bytes);
      if (actual != it->get<std::string>()) {
        integrity(at + ": SHA-256 mismatch: the file was modified (manifest " + it->get<std::string>() +
                  ", file " + actual + ")");
      }
      if (fs::path(rel).lexically_normal() == model_normal) {
        impl->model_bytes = std::move(bytes);
        model_listed = true;
      }
    }
    if (!model_listed) {
      integrity(model_where + ".file: '" + impl->model_file + "' is not listed in \"files\" with a SHA-256");
    }
    detail::log(LogLevel::kInfo, "opened model package {} {} ({}), manifest sha256 {}", impl->identity.name,
                impl->identity.version, impl->directory, impl->identity.sha256);
    return ModelPackage(std::move(impl));
  });
}

std::string sha256_file(const std::string& path) {
  return detail::sha256_hex(detail::read_file(path, kMaxModelBytes));
}

ModelPackage::ModelPackage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelPackage::ModelPackage(ModelPackage&&) noexcept = default;
ModelPackage& ModelPackage::operator=(ModelPackage&&) noexcept = default;
ModelPackage::~ModelPackage() = default;

const ModelIdentity& ModelPackage::identity() const noexcept { return impl_->identity; }
const std::string& ModelPackage::directory() const noexcept { return impl_->directory; }
const std::string& ModelPackage::manifest_text() const noexcept { return impl_->manifest_text; }
const std::vector<std::int64_t>& ModelPackage::input_shape() const noexcept { return impl_->input_shape; }
std::int64_t ModelPackage::output_count() const noexcept { return impl_->output_count; }
const std::string& ModelPackage::model_bytes() const noexcept { return impl_->model_bytes; }
const std::string& ModelPackage::signer_key_id() const noexcept { return impl_->signer_key_id; }
Task ModelPackage::task() const noexcept { return impl_->task; }
const std::vector<std::string>& ModelPackage::labels() const noexcept { return impl_->labels; }
const std::vector<LabelCode>& ModelPackage::label_codes() const noexcept { return impl_->label_codes; }
const std::string& ModelPackage::model_format() const noexcept { return impl_->model_format; }
const std::string& ModelPackage::intended_use() const noexcept { return impl_->intended_use; }

const detail::Json& detail::PackageAccess::manifest(const ModelPackage& package) noexcept {
  return package.impl_->manifest;
}

}  // namespace medinfer
