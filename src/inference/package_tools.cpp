// Tools for package authors: keys, create, sign (no LibTorch here: packages are data until opened).
#include <medinfer/error.hpp>
#include <medinfer/model.hpp>

#include "core/file_util.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"
#include "core/signing.hpp"

#include <filesystem>
#include <fstream>

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

}  // namespace

SigningKey generate_signing_key() {
  const auto k = detail::ed25519_generate();
  return {k.private_pem, k.public_pem};
}

std::string key_id(const std::string& pem) { return detail::ed25519_key_id(pem, "key"); }

void create(const std::string& model_file, const std::string& manifest_template, const std::string& out_dir) {
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
  std::error_code ec;
  const fs::path out(out_dir);
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    throw Error(ErrorCode::kInvalidArgument, out_dir + ": exists and is not empty (a package is written into a new directory)");
  }
  fs::create_directories(out, ec);
  if (ec) throw Error(ErrorCode::kIo, out_dir + ": cannot create: " + ec.message());

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
  (void)ModelPackage::open(out_dir);  // everything a host will check, checked now
}

std::string sign(const std::string& directory, const std::string& private_pem) {
  const ModelPackage pkg = ModelPackage::open(directory);  // hashes verified: sign only what is whole
  const std::string id = detail::ed25519_key_id(private_pem, "signing key");
  const std::string signature = detail::ed25519_sign(private_pem, pkg.manifest_text(), "signing key");
  Json sig = {{"algorithm", "Ed25519"}, {"key_id", id}, {"signature", detail::base64_encode(signature)}};
  write_file(fs::path(pkg.directory()) / "manifest.sig", sig.dump(2) + "\n");
  return id;
}

}  // namespace medinfer::package
