// `medinfer package keygen|create|sign|verify`: making, signing and checking model packages.
#include "cli_common.hpp"

#include <medinfer/model.hpp>
#include <medinfer/pipeline.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

namespace {

// What Pipeline::open checks beyond the hashes: the preprocessing, calibration and risk sections
// parse and validate (without loading the model into LibTorch).
void write_text_file(const std::string& path, const std::string& text, bool secret) {
  if (std::filesystem::exists(path)) usage_error("package keygen: " + path + " exists (not overwritten)");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw medinfer::Error(medinfer::ErrorCode::kIo, path + ": cannot write");
  }
  if (secret) ::chmod(path.c_str(), 0600);
}

int keygen(const std::vector<std::string>& args) {
  std::optional<std::string> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--out") {
      out = option_value(args, i);
    } else {
      usage_error("package keygen: unknown argument '" + args[i] + "'");
    }
  }
  if (!out) usage_error("package keygen: --out KEY is required");
  const auto key = medinfer::package::generate_signing_key();
  write_text_file(*out, key.private_pem, true);
  write_text_file(*out + ".pub", key.public_pem, false);
  print_line(Json{{"private_key", *out}, {"public_key", *out + ".pub"}, {"key_id", medinfer::package::key_id(key.public_pem)}});
  return 0;
}

int create(const std::vector<std::string>& args) {
  std::optional<std::string> model, manifest, out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--model") {
      model = option_value(args, i);
    } else if (a == "--manifest") {
      manifest = option_value(args, i);
    } else if (a == "--out") {
      out = option_value(args, i);
    } else {
      usage_error("package create: unknown argument '" + a + "'");
    }
  }
  if (!model || !manifest || !out) usage_error("package create: --model FILE.pt --manifest M.json --out DIR are required");
  medinfer::package::create(*model, *manifest, *out);
  const auto pkg = medinfer::verify_package(*out);
  print_line(Json{{"package", *out}, {"name", pkg.identity().name}, {"version", pkg.identity().version},
                  {"sha256", pkg.identity().sha256}});
  return 0;
}

int sign(const std::vector<std::string>& args) {
  std::optional<std::string> dir, key;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--key") {
      key = option_value(args, i);
    } else if (!a.empty() && a[0] == '-') {
      usage_error("package sign: unknown option '" + a + "'");
    } else if (dir) {
      usage_error("package sign: one DIR only");
    } else {
      dir = a;
    }
  }
  if (!dir || !key) usage_error("package sign: DIR --key KEY is required");
  const std::string id = medinfer::package::sign(*dir, read_text_file(*key));
  print_line(Json{{"package", *dir}, {"key_id", id}});
  return 0;
}

int verify(const std::vector<std::string>& args) {
  std::optional<std::string> dir;
  medinfer::PackageOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--trusted-key") {
      options.trusted_public_keys.push_back(read_text_file(option_value(args, i)));
    } else if (a == "--require-signature") {
      options.require_signature = true;
    } else if (!a.empty() && a[0] == '-') {
      usage_error("package verify: unknown option '" + a + "'");
    } else if (dir) {
      usage_error("package verify: one DIR only");
    } else {
      dir = a;
    }
  }
  if (!dir) usage_error("package verify: DIR is required");
  try {
    const auto pkg = medinfer::verify_package(*dir, options);
    const std::string& signer = pkg.signer_key_id();
    const auto formats = medinfer::backend_formats();
    const bool runnable = std::find(formats.begin(), formats.end(), pkg.model_format()) != formats.end();
    print_line(Json{{"package", *dir}, {"ok", true}, {"name", pkg.identity().name}, {"version", pkg.identity().version},
                    {"sha256", pkg.identity().sha256}, {"signed_by", signer.empty() ? Json() : Json(signer)},
                    {"task", medinfer::to_string(pkg.task())}, {"labels", pkg.labels()},
                    {"model_format", pkg.model_format()}, {"backend_available", runnable}});
    return 0;
  } catch (const medinfer::Error& e) {
    print_line(Json{{"package", *dir}, {"ok", false}, {"error", error_json(*dir, e)["error"]}});
    return 1;
  }
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw medinfer::Error(medinfer::ErrorCode::kNotFound, path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int run_package(const std::vector<std::string>& args) {
  if (args.empty()) usage_error("package: expected keygen, create, sign or verify");
  const std::string sub = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "keygen") return keygen(rest);
  if (sub == "create") return create(rest);
  if (sub == "sign") return sign(rest);
  if (sub == "verify") return verify(rest);
  usage_error("package: unknown subcommand '" + sub + "' (keygen, create, sign, verify)");
}
