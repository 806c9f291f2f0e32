// Tools for package authors: keys, create, sign, recalibrated versions (no LibTorch here: packages are
// data until opened). Everything written is checked with verify_package before it is reported written.
#include <medinfer/error.hpp>
#include <medinfer/package.hpp>

#include "core/file_util.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"
#include "core/signing.hpp"

#include <filesystem>
#include <fstream>
#include <regex>

namespace medinfer::package {
namespace {

namespace fs = std::filesystem;
using detail::Json;

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out) throw Error(ErrorCode::kIo, path.string() + ": cannot write");
}

// A relative path that stays inside the package (the open-time rule, applied when writing).
fs::path member(const fs::path& root, const std::string& rel, const std::string& where) {
  const fs::path p(rel);
  if (rel.empty() || p.is_absolute()) {
    throw Error(ErrorCode::kInvalidArgument, where + ": '" + rel + "' is not a relative path inside the package");
  }
  for (const auto& part : p.lexically_normal()) {
    if (part == "..") throw Error(ErrorCode::kInvalidArgument, where + ": '" + rel + "' escapes the package ('..')");
  }
  return root / p.lexically_normal();
}

// Writes a package into `out` (new, or empty) with `write`; if anything fails, what was written is removed
// again, so no directory is left that looks like a package but is not one.
template <class Write>
auto write_package(const fs::path& out, Write&& write) -> decltype(write()) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    throw Error(ErrorCode::kInvalidArgument, out.string() + ": exists and is not empty (a package is written into a new directory)");
  }
  const bool existed = fs::exists(out, ec);
  fs::create_directories(out, ec);
  if (ec) throw Error(ErrorCode::kIo, out.string() + ": cannot create: " + ec.message());
  try {
    return write();
  } catch (...) {
    std::error_code ignored;
    for (const auto& entry : fs::directory_iterator(out, ignored)) fs::remove_all(entry.path(), ignored);
    if (!existed) fs::remove(out, ignored);
    throw;
  }
}

}  // namespace

SigningKey generate_signing_key() {
  const auto k = detail::ed25519_generate();
  return {k.private_pem, k.public_pem};
}

std::string key_id(const std::string& pem) { return detail::ed25519_key_id(pem, "key"); }

std::string public_key_id(const std::string& public_pem) { return detail::ed25519_public_key_id(public_pem, "key"); }

namespace {
void create_package(const std::string& model_file, const std::string& manifest_template, const std::string& out_dir) {
  const std::string where = manifest_template;
  Json m = detail::parse_json(detail::read_file(manifest_template, 1 << 20), where);
  detail::require_object(m, where);
  if (!m.contains("model") || !m["model"].is_object()) {
    throw Error(ErrorCode::kInvalidArgument, where + ": model: expected an object with \"format\"");
  }
  if (!fs::is_regular_file(model_file)) throw Error(ErrorCode::kNotFound, model_file + ": no such model file");
  std::string model_name = m["model"].contains("file") ? detail::get_string(m["model"], "file", where + ": model")
                                                        : fs::path(model_file).filename().string();
  m["model"]["file"] = model_name;
  const fs::path out(out_dir);
  write_package(out, [&] {
    std::error_code ec;
    Json files = Json::object();
    // Other files the template names (calibration reports, label maps, ...), from beside the template.
    if (m.contains("files")) {
      detail::require_object(m["files"], where + ": files");
      for (auto it = m["files"].begin(); it != m["files"].end(); ++it) {
        if (it.key() == model_name) continue;
        const fs::path src = member(fs::path(manifest_template).parent_path(), it.key(), where + ": files");
        const fs::path dst = member(out, it.key(), where + ": files");
        fs::create_directories(dst.parent_path(), ec);
        const std::string bytes = detail::read_file(src.string(), 1ull << 32);
        write_file(dst, bytes);
        files[it.key()] = detail::sha256_hex(bytes);
      }
    }
    const std::string model_bytes = detail::read_file(model_file, 1ull << 32);
    const fs::path model_dst = member(out, model_name, where + ": model.file");
    fs::create_directories(model_dst.parent_path(), ec);
    write_file(model_dst, model_bytes);
    files[model_name] = detail::sha256_hex(model_bytes);
    m["files"] = files;
    write_file(out / "manifest.json", m.dump(2) + "\n");
    (void)verify_package(out_dir);  // everything Pipeline::open checks short of loading the model
  });
}

}  // namespace

void create(const std::string& model_file, const std::string& manifest_template, const std::string& out_dir) {
  detail::guarded_parse(manifest_template, [&] { create_package(model_file, manifest_template, out_dir); });
}

std::string sign(const std::string& directory, const std::string& private_pem) {
  const std::string id = detail::ed25519_private_key_id(private_pem, "signing key");
  const ModelPackage pkg = verify_package(directory);  // sign only a whole package the pipeline opens
  const std::string signature = detail::ed25519_sign(private_pem, pkg.manifest_text(), "signing key");
  Json sig = {{"algorithm", "Ed25519"}, {"key_id", id}, {"signature", detail::base64_encode(signature)}};
  write_file(fs::path(pkg.directory()) / "manifest.sig", sig.dump(2) + "\n");
  return id;
}

std::string next_minor_version(const std::string& version) {
  static const std::regex triple(R"(^(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:[-+].*)?$)");
  std::smatch v;
  if (!std::regex_match(version, v, triple)) {
    throw Error(ErrorCode::kInvalidArgument, "version '" + version + "' is not MAJOR.MINOR.PATCH");
  }
  return v[1].str() + "." + std::to_string(std::stoll(v[2].str()) + 1) + ".0";
}

ModelIdentity write_recalibrated(const std::string& package_dir, const std::vector<calibration::Calibrator>& calibrators,
                                 const std::string& report_json, const std::string& out_dir) {
  const ModelPackage source = verify_package(package_dir);  // the verified manifest and files
  const std::string where = source.directory() + "/manifest.json";
  calibration::check_for_task(calibrators, source.task(), source.labels().size(), "write_recalibrated: calibration");
  detail::require_object(detail::parse_json(report_json, "write_recalibrated: report"), "write_recalibrated: report");
  // Ordered: the new manifest keeps the author's field order (the source was parsed and checked at open).
  using OJson = nlohmann::ordered_json;
  OJson report = OJson::parse(report_json);
  OJson manifest = OJson::parse(source.manifest_text());
  const std::string next_version = next_minor_version(source.identity().version);
  report["derived_from"] = source.identity().name + " " + source.identity().version + " (manifest sha256 " +
                           source.identity().sha256 + ")";
  manifest["version"] = next_version;
  manifest["calibration"] = OJson::parse(calibration::to_json(calibrators, source.task()));

  const fs::path src(source.directory());
  const fs::path dst(out_dir);
  return write_package(dst, [&] {
    std::error_code ec;
    OJson& files = manifest["files"];
    files.erase("calibration_report.json");  // the previous version's report is replaced
    for (auto it = files.begin(); it != files.end(); ++it) {
      const fs::path from = member(src, it.key(), where + ": files");
      const fs::path to = member(dst, it.key(), where + ": files");
      fs::create_directories(to.parent_path(), ec);
      const std::string bytes = detail::read_file(from.string(), 1ull << 32);
      // The copy must be the verified file: a file changed since the package was opened is refused,
      // never re-hashed into the new version.
      if (detail::sha256_hex(bytes) != it->get<std::string>()) {
        throw Error(ErrorCode::kModelIntegrity, from.string() + " changed while the new version was written");
      }
      write_file(to, bytes);
    }
    const std::string report_text = report.dump(2) + "\n";
    write_file(dst / "calibration_report.json", report_text);
    files["calibration_report.json"] = detail::sha256_hex(report_text);
    write_file(dst / "manifest.json", manifest.dump(2) + "\n");
    return verify_package(out_dir).identity();  // the new version opens, or nothing is left written
  });
}

}  // namespace medinfer::package
