// `medinfer package keygen|create|sign|verify`: making, signing and checking model packages. Every
// check is the library's (verify_package): this file parses arguments and prints.
#include "cli_common.hpp"

#include <medinfer/engine.hpp>
#include <medinfer/package.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

namespace {

void write_text_file(const std::string& path, const std::string& text, bool secret) {
  if (std::filesystem::exists(path)) {
    throw medinfer::Error(medinfer::ErrorCode::kIo, "package keygen: " + path + " exists (not overwritten)");
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw medinfer::Error(medinfer::ErrorCode::kIo, path + ": cannot write");
  }
  if (secret) ::chmod(path.c_str(), 0600);
}

int keygen(const std::string& out) {
  const auto key = medinfer::package::generate_signing_key();
  write_text_file(out, key.private_pem, true);
  write_text_file(out + ".pub", key.public_pem, false);
  print_line(Json{{"private_key", out}, {"public_key", out + ".pub"}, {"key_id", medinfer::package::key_id(key.public_pem)}});
  return 0;
}

int create(const std::string& model, const std::string& manifest, const std::string& out) {
  medinfer::package::create(model, manifest, out);  // checked with verify_package before it returns
  const auto pkg = medinfer::ModelPackage::open(out);
  print_line(Json{{"package", out}, {"name", pkg.identity().name}, {"version", pkg.identity().version},
                  {"sha256", pkg.identity().sha256}});
  return 0;
}

int sign(const std::string& dir, const std::string& key) {
  const std::string id = medinfer::package::sign(dir, read_text_file(key));
  print_line(Json{{"package", dir}, {"key_id", id}});
  return 0;
}

int verify(const std::string& dir, const std::vector<std::string>& trusted_keys, bool require_signature,
           bool allow_unsigned) {
  try {
    medinfer::PackageOptions options;
    options.trusted_public_keys = read_trusted_keys(trusted_keys);
    options.require_signature = require_signature;
    options.allow_unsigned = allow_unsigned;
    const auto pkg = medinfer::verify_package(dir, options);
    const std::string& signer = pkg.signer_key_id();
    const auto formats = medinfer::backend_formats();
    const bool runnable = std::find(formats.begin(), formats.end(), pkg.model_format()) != formats.end();
    print_line(Json{{"package", dir}, {"ok", true}, {"name", pkg.identity().name}, {"version", pkg.identity().version},
                    {"sha256", pkg.identity().sha256}, {"signed_by", signer.empty() ? Json() : Json(signer)},
                    {"task", medinfer::to_string(pkg.task())}, {"labels", pkg.labels()},
                    {"model_format", pkg.model_format()}, {"backend_available", runnable}});
    return 0;
  } catch (const medinfer::Error& e) {
    print_line(Json{{"package", dir}, {"ok", false}, {"error", error_json(dir, e)["error"]}});
    return 1;
  }
}

}  // namespace

std::vector<std::string> read_trusted_keys(const std::vector<std::string>& paths) {
  std::vector<std::string> keys;
  for (const std::string& path : paths) {
    keys.push_back(read_text_file(path));
    try {
      (void)medinfer::package::public_key_id(keys.back());
    } catch (const medinfer::Error& e) {
      throw medinfer::Error(e.code(), "--trusted-key " + path + ": " + e.what());
    }
  }
  return keys;
}

std::string read_text_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, path + ": a directory, not a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw medinfer::Error(medinfer::ErrorCode::kNotFound, path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void add_package_command(CLI::App& app, Runner& run) {
  CLI::App* package = app.add_subcommand("package", "package keygen|create|sign|verify: makes, signs and checks model packages");
  package->require_subcommand(1);
  struct Options {
    std::string out, model, manifest, dir, key;
    std::vector<std::string> trusted_keys;
    bool require_signature = false;
    bool allow_unsigned = false;
  };
  auto o = std::make_shared<Options>();

  CLI::App* keygen_cmd = package->add_subcommand(
      "keygen", "package keygen --out KEY: writes a new Ed25519 signing key to KEY (private, mode 0600) and KEY.pub "
                "(give it to hosts); never overwrites");
  keygen_cmd->add_option("--out", o->out, "the private key file")->required();
  keygen_cmd->callback([o, &run] { run = [o] { return keygen(o->out); }; });

  CLI::App* create_cmd = package->add_subcommand(
      "create", "package create --model FILE.pt --manifest M.json --out DIR: writes a package (the model and every file "
                "M.json's \"files\" names, and manifest.json with each file's SHA-256), then checks it as Pipeline::open "
                "would; prints {package, name, version, sha256}");
  create_cmd->add_option("--model", o->model, "the model file")->required();
  create_cmd->add_option("--manifest", o->manifest, "the manifest template")->required();
  create_cmd->add_option("--out", o->out, "a new (or empty) directory")->required();
  create_cmd->callback([o, &run] { run = [o] { return create(o->model, o->manifest, o->out); }; });

  CLI::App* sign_cmd = package->add_subcommand(
      "sign", "package sign DIR --key KEY: signs DIR's manifest.json (Ed25519), writing DIR/manifest.sig; prints "
              "{package, key_id}");
  sign_cmd->add_option("dir", o->dir, "the package directory")->required();
  sign_cmd->add_option("--key", o->key, "the private key (PEM)")->required();
  sign_cmd->callback([o, &run] { run = [o] { return sign(o->dir, o->key); }; });

  CLI::App* verify_cmd = package->add_subcommand(
      "verify", "package verify DIR [--trusted-key KEY.pub]... [--require-signature]: checks every hash, the signature "
                "and every section: {package, ok: true, name, version, sha256, signed_by, task, labels, model_format, "
                "backend_available} (exit 0), or {package, ok: false, error: {code, message}} (exit 1)");
  verify_cmd->add_option("dir", o->dir, "the package directory")->required();
  verify_cmd->add_option("--trusted-key", o->trusted_keys, "a trusted Ed25519 public key (PEM), repeatable")
      ->allow_extra_args(false);
  verify_cmd->add_flag("--require-signature", o->require_signature, "refuse an unsigned package");
  verify_cmd->add_flag("--allow-unsigned", o->allow_unsigned,
                       "with --trusted-key, still accept an unsigned package (a pinned key otherwise requires a signature)");
  verify_cmd->callback([o, &run] {
    run = [o] { return verify(o->dir, o->trusted_keys, o->require_signature, o->allow_unsigned); };
  });
}
