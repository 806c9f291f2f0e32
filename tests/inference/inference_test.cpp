#include <medinfer/error.hpp>
#include <medinfer/model.hpp>
#include <medinfer/build_info.hpp>
#include <medinfer/log.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

using namespace medinfer;
using test::error_code_of;
namespace fs = std::filesystem;

namespace {

// Rewrites the copied package's manifest through `edit`.
void edit_manifest(const fs::path& package, const std::function<void(nlohmann::json&)>& edit) {
  auto m = nlohmann::json::parse(test::read_text(package / "manifest.json"));
  edit(m);
  test::write_text(package / "manifest.json", m.dump(2));
}

ErrorCode open_code(const fs::path& package, std::string* msg = nullptr) {
  return error_code_of([&] { ModelPackage::open(package.string()); }, msg);
}

}  // namespace

TEST_CASE("the demo package opens, and its identity hash is the manifest's SHA-256", "[inference]") {
  const ModelPackage p = ModelPackage::open(test::demo_model_dir().string());
  CHECK(p.identity().name == "demo-ct-lesion");
  CHECK(p.identity().version == "1.1.0");
  CHECK(p.identity().sha256 == test::sha256_file(test::demo_model_dir() / "manifest.json"));
  CHECK(p.input_shape() == std::vector<std::int64_t>{1, 1, 64, 64});
  CHECK(p.output_count() == 1);
  CHECK(p.model_bytes().size() == fs::file_size(test::demo_model_dir() / "model.pt"));
}

TEST_CASE("a model.pt that differs by one byte is refused with kModelIntegrity", "[inference][integrity]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  std::string bytes = test::read_text(pkg / "model.pt");
  bytes[bytes.size() / 2] ^= 0x01;
  test::write_text(pkg / "model.pt", bytes);
  std::string msg;
  CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("model.pt") && Catch::Contains("SHA-256 mismatch"));
}

TEST_CASE("the hash is checked before LibTorch parses anything", "[inference][integrity]") {
  // A model.pt that would make LibTorch fail if it were parsed: refused for its hash first.
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  test::write_text(pkg / "model.pt", "this is not a TorchScript archive");
  std::string msg;
  CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("SHA-256 mismatch"));
  // With a matching hash, the same bytes pass integrity and LibTorch's refusal is translated.
  edit_manifest(pkg, [&](nlohmann::json& m) { m["files"]["model.pt"] = test::sha256_file(pkg / "model.pt"); });
  const ModelPackage p = ModelPackage::open(pkg.string());
  CHECK(error_code_of([&] { Engine::open(p); }, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("not a loadable TorchScript"));
}

TEST_CASE("packages whose files escape, vanish or are unlisted are refused with kModelIntegrity",
          "[inference][integrity]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  const std::string digest = test::sha256_file(pkg / "model.pt");
  test::write_text(dir / "outside.bin", "x");
  std::string msg;
  SECTION("'..' in a path") {
    edit_manifest(pkg, [&](nlohmann::json& m) { m["files"]["../outside.bin"] = test::sha256_file(dir / "outside.bin"); });
    CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
    CHECK_THAT(msg, Catch::Contains("escapes the package"));
  }
  SECTION("an absolute path") {
    edit_manifest(pkg, [&](nlohmann::json& m) { m["files"][(dir / "outside.bin").string()] = digest; });
    CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
  }
  SECTION("a symlink out of the package") {
    fs::create_symlink(dir / "outside.bin", pkg / "link.bin");
    edit_manifest(pkg, [&](nlohmann::json& m) { m["files"]["link.bin"] = test::sha256_file(dir / "outside.bin"); });
    CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
    CHECK_THAT(msg, Catch::Contains("outside the package"));
  }
  SECTION("a listed file that is missing") {
    fs::remove(pkg / "model.pt");
    CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
    CHECK_THAT(msg, Catch::Contains("missing"));
  }
  SECTION("the model file not listed") {
    edit_manifest(pkg, [&](nlohmann::json& m) { m["files"].erase("model.pt"); });
    CHECK(open_code(pkg, &msg) == ErrorCode::kModelIntegrity);
    CHECK_THAT(msg, Catch::Contains("not listed"));
  }
}

TEST_CASE("a missing package or manifest is kNotFound; a malformed manifest names the field", "[inference][errors]") {
  test::TempDir dir;
  std::string msg;
  CHECK(open_code(dir / "nope", &msg) == ErrorCode::kNotFound);
  const fs::path pkg = test::copy_demo_package(dir.path());
  fs::remove(pkg / "manifest.json");
  CHECK(open_code(pkg) == ErrorCode::kNotFound);

  const std::vector<std::tuple<std::function<void(nlohmann::json&)>, ErrorCode, std::string>> cases = {
      {[](nlohmann::json& m) { m.erase("name"); }, ErrorCode::kInvalidArgument, "manifest.json: name: missing"},
      {[](nlohmann::json& m) { m["version"] = "one"; }, ErrorCode::kInvalidArgument, "not a semantic version"},
      {[](nlohmann::json& m) { m["input"]["shape"] = {1, 64}; }, ErrorCode::kInvalidArgument, "input.shape"},
      {[](nlohmann::json& m) { m["files"]["model.pt"] = "abc"; }, ErrorCode::kInvalidArgument, "SHA-256"},
      {[](nlohmann::json& m) { m["format_version"] = 2; }, ErrorCode::kUnsupported, "format_version 2"},
      {[](nlohmann::json& m) { m["task"] = "segmentation"; }, ErrorCode::kUnsupported, "task"},
      {[](nlohmann::json& m) { m["min_sdk_version"] = "99.0.0"; }, ErrorCode::kUnsupported, "needs medinfer 99.0.0"},
      {[](nlohmann::json& m) { m["min_sdk_version"] = "1.x"; }, ErrorCode::kInvalidArgument, "min_sdk_version"},
      {[](nlohmann::json& m) { m["labels"] = {"a", "b"}; }, ErrorCode::kInvalidArgument, "binary task has exactly 1 output"},
      {[](nlohmann::json& m) { m["task"] = "multi-label"; m["labels"] = {"a", "a"}; }, ErrorCode::kInvalidArgument, "labels[1]: 'a' appears twice"},
      {[](nlohmann::json& m) { m["task"] = "multi-label"; m["labels"] = {"a", "b"}; }, ErrorCode::kInvalidArgument, "1 outputs but 2 labels"},
      {[](nlohmann::json& m) { m["task"] = "multi-class"; }, ErrorCode::kInvalidArgument, "at least 2 classes"},
      {[](nlohmann::json& m) { m["labels"] = {""}; }, ErrorCode::kInvalidArgument, "labels[0]: expected a non-empty string"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& [edit, code, expected] = cases[i];
    const fs::path p = dir / ("case" + std::to_string(i));
    fs::create_directories(p);
    const fs::path copy = test::copy_demo_package(p);
    edit_manifest(copy, edit);
    INFO(expected);
    CHECK(open_code(copy, &msg) == code);
    CHECK_THAT(msg, Catch::Contains(expected));
  }
  // A format with no registered backend passes integrity (the package only verifies bytes) and is
  // refused by Engine::open, naming the format and what is registered.
  {
    const fs::path p = dir / "onnx";
    fs::create_directories(p);
    const fs::path copy = test::copy_demo_package(p);
    edit_manifest(copy, [](nlohmann::json& m) { m["model"]["format"] = "onnx"; });
    const ModelPackage package = ModelPackage::open(copy.string());
    CHECK(package.model_format() == "onnx");
    CHECK(error_code_of([&] { Engine::open(package); }, &msg) == ErrorCode::kUnsupported);
    CHECK_THAT(msg, Catch::Contains("model.format: 'onnx' has no backend") && Catch::Contains("torchscript"));
  }
  test::write_text(pkg / "manifest.json", "{\"name\": ");
  CHECK(open_code(pkg, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("not valid JSON"));
}

TEST_CASE("Engine runs the model and checks input shapes and devices", "[inference]") {
  const ModelPackage p = ModelPackage::open(test::demo_model_dir().string());
  const Engine engine = Engine::open(p);
  Tensor in;
  in.shape = {3, 1, 64, 64};
  in.data.assign(3 * 64 * 64, 0.25f);
  const Tensor out = engine.run(in);
  REQUIRE(out.shape == std::vector<std::int64_t>{3, 1});
  CHECK(out.data[0] == out.data[2]);  // same input, same logit

  std::string msg;
  Tensor wrong;
  wrong.shape = {1, 1, 32, 32};
  wrong.data.assign(32 * 32, 0.0f);
  CHECK(error_code_of([&] { engine.run(wrong); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("[1, 1, 32, 32]"));
  Tensor short_data = in;
  short_data.data.resize(10);
  CHECK(error_code_of([&] { engine.run(short_data); }) == ErrorCode::kInvalidArgument);

  EngineOptions bad;
  bad.device = "gpu0";
  CHECK(error_code_of([&] { Engine::open(p, bad); }) == ErrorCode::kInvalidArgument);
  EngineOptions cuda;
  cuda.device = "cuda:0";
  if (!medinfer::build_info().cuda_available) CHECK(error_code_of([&] { Engine::open(p, cuda); }) == ErrorCode::kUnsupported);
}

TEST_CASE("signed packages: verified against pinned keys before anything else is read", "[inference][signing]") {
  test::TempDir dir;
  const auto pkg = test::copy_demo_package(dir.path());
  const auto key = package::generate_signing_key();
  const auto other = package::generate_signing_key();
  CHECK(package::key_id(key.private_pem) == package::key_id(key.public_pem));
  const std::string id = package::sign(pkg.string(), key.private_pem);
  PackageOptions trust;
  trust.trusted_public_keys = {other.public_pem, key.public_pem};
  trust.require_signature = true;
  CHECK(ModelPackage::open(pkg.string(), trust).signer_key_id() == id);
  CHECK(ModelPackage::open(pkg.string()).signer_key_id().empty());  // no keys pinned: not verified, not refused

  std::string msg;
  PackageOptions no_keys;
  no_keys.require_signature = true;
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), no_keys); }, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("no trusted public keys"));
  PackageOptions bad_key;
  bad_key.trusted_public_keys = {"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"};
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), bad_key); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("trusted_public_keys[0]"));

  // A symlinked signature is refused; so is a package whose model changed (hash) even when signed.
  test::fs::rename(pkg / "manifest.sig", dir / "elsewhere.sig");
  test::fs::create_symlink(dir / "elsewhere.sig", pkg / "manifest.sig");
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), trust); }, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("not a link"));
  test::fs::remove(pkg / "manifest.sig");
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), trust); }, &msg) == ErrorCode::kModelIntegrity);
  CHECK_THAT(msg, Catch::Contains("not signed"));
}

TEST_CASE("a file the manifest does not list is refused by name, signed or not", "[inference][security]") {
  const package::SigningKey key = package::generate_signing_key();
  PackageOptions pinned;
  pinned.trusted_public_keys = {key.public_pem};
  pinned.require_signature = true;
  struct Extra {
    std::string name;
    std::function<void(const fs::path&)> make;
  };
  const std::vector<Extra> extras = {
      {"evil.txt", [](const fs::path& p) { test::write_text(p / "evil.txt", "x"); }},
      {"other.pt", [](const fs::path& p) { fs::copy_file(p / "model.pt", p / "other.pt"); }},
      {".hidden", [](const fs::path& p) { test::write_text(p / ".hidden", ""); }},
      {"passwd", [](const fs::path& p) { fs::create_symlink("/etc/passwd", p / "passwd"); }},
      {"sub", [](const fs::path& p) {  // an unlisted directory is named before what it holds
         fs::create_directory(p / "sub");
         test::write_text(p / "sub" / "inner.bin", "x");
       }},
      {"empty_dir", [](const fs::path& p) { fs::create_directory(p / "empty_dir"); }},
  };
  for (const Extra& extra : extras) {
    test::TempDir dir;
    const fs::path pkg = test::copy_demo_package(dir.path());
    package::sign(pkg.string(), key.private_pem);
    REQUIRE_NOTHROW(ModelPackage::open(pkg.string(), pinned));
    extra.make(pkg);
    INFO(extra.name);
    std::string message;
    CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), pinned); }, &message) == ErrorCode::kModelIntegrity);
    CHECK_THAT(message, Catch::Contains("'" + extra.name + "' is in the package but not listed"));
    CHECK(error_code_of([&] { ModelPackage::open(pkg.string()); }) == ErrorCode::kModelIntegrity);
  }
}

TEST_CASE("manifest.json must be a regular file in the package; a link loop is reported as a loop",
          "[inference][security]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  const package::SigningKey key = package::generate_signing_key();
  package::sign(pkg.string(), key.private_pem);
  PackageOptions pinned;
  pinned.trusted_public_keys = {key.public_pem};
  pinned.require_signature = true;
  // The same, signed bytes outside the package, reached by a link: refused even with a valid signature.
  fs::rename(pkg / "manifest.json", dir / "outside.json");
  fs::create_symlink(dir / "outside.json", pkg / "manifest.json");
  std::string message;
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), pinned); }, &message) == ErrorCode::kModelIntegrity);
  CHECK_THAT(message, Catch::Contains("not a symbolic link"));
  // A package directory reached through a link is followed (the host chose that path).
  fs::remove(pkg / "manifest.json");
  fs::rename(dir / "outside.json", pkg / "manifest.json");
  fs::create_directory_symlink(pkg, dir / "link-to-package");
  CHECK_NOTHROW(ModelPackage::open((dir / "link-to-package").string(), pinned));
  fs::create_directory_symlink(dir / "loop-b", dir / "loop-a");
  fs::create_directory_symlink(dir / "loop-a", dir / "loop-b");
  CHECK(error_code_of([&] { ModelPackage::open((dir / "loop-a").string()); }, &message) == ErrorCode::kIo);
  CHECK_THAT(message, Catch::Contains("loop of symbolic links"));
}

TEST_CASE("a pinned key requires a signature: stripping manifest.sig does not defeat it", "[inference][security]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  const package::SigningKey a = package::generate_signing_key();
  package::sign(pkg.string(), a.private_pem);
  PackageOptions pinned;
  pinned.trusted_public_keys = {a.public_pem};
  REQUIRE_NOTHROW(ModelPackage::open(pkg.string(), pinned));
  // The recipe: edit the signed manifest, delete the signature, open with the key pinned.
  std::string edited = test::read_text(pkg / "manifest.json");
  const auto at = edited.find("\"escalation_threshold\":");
  REQUIRE(at != std::string::npos);
  const auto end = edited.find_first_of(",}", at);
  edited.replace(at, end - at, "\"escalation_threshold\": 0.99");
  test::write_text(pkg / "manifest.json", edited);
  fs::remove(pkg / "manifest.sig");
  std::string message;
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), pinned); }, &message) == ErrorCode::kModelIntegrity);
  CHECK_THAT(message, Catch::Contains("not signed") && Catch::Contains("pinned"));
  std::vector<std::string> warnings;
  set_log_handler([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::kWarning) warnings.emplace_back(m);
  }, LogLevel::kWarning);
  PackageOptions allow = pinned;
  allow.allow_unsigned = true;
  CHECK_NOTHROW(ModelPackage::open(pkg.string(), allow));  // the host's explicit choice
  CHECK(warnings.size() == 1);
  ModelPackage::open(pkg.string());  // no key pinned: opens, with a warning
  CHECK(warnings.size() == 2);
  CHECK_THAT(warnings.back(), Catch::Contains("not signed"));
  // Signed by a key nobody pinned, no key pinned: opens with a warning that it was not verified.
  const package::SigningKey b = package::generate_signing_key();
  package::sign(pkg.string(), b.private_pem);
  ModelPackage::open(pkg.string());
  CHECK_THAT(warnings.back(), Catch::Contains("not verified"));
  CHECK(error_code_of([&] { ModelPackage::open(pkg.string(), pinned); }, &message) == ErrorCode::kModelIntegrity);
  CHECK_THAT(message, Catch::Contains("not among the trusted keys"));
  set_log_handler(nullptr);
}

TEST_CASE("a pinned key that is not an Ed25519 public key is an error saying which", "[inference][security]") {
  const package::SigningKey a = package::generate_signing_key();
  for (const std::string& bad : {std::string(), std::string("not a key"), a.private_pem}) {
    PackageOptions options;
    options.trusted_public_keys = {a.public_pem, bad};
    std::string message;
    // Checked for an unsigned package too: the demo package is not signed.
    CHECK(error_code_of([&] { ModelPackage::open(test::demo_model_dir().string(), options); }, &message) ==
          ErrorCode::kInvalidArgument);
    CHECK_THAT(message, Catch::Contains("trusted_public_keys[1]"));
    CHECK_THAT(message, Catch::Contains(bad == a.private_pem ? "a private key" : "not an Ed25519 public key"));
  }
  CHECK(package::public_key_id(a.public_pem) == package::key_id(a.private_pem));
}
