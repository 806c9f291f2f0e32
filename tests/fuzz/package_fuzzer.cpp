// libFuzzer harness for the package opener: the input is manifest.json, optionally followed by a line
// "\n--sig--\n" and manifest.sig, written into a package directory that also holds a model file; the
// package is opened with and without a pinned key and checked as Pipeline::open would (verify_package).
// Any bytes must end in a package or a medinfer::Error.
#include <medinfer/error.hpp>
#include <medinfer/package.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

const fs::path& package_dir() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("medinfer-package-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    write(d / "model.pt", "not really a model");  // the opener only hashes it
    return d;
  }();
  return dir;
}

const medinfer::package::SigningKey& key() {
  static const medinfer::package::SigningKey k = medinfer::package::generate_signing_key();
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const fs::path dir = package_dir();
  const auto cut = input.find("\n--sig--\n");
  write(dir / "manifest.json", input.substr(0, cut));
  std::error_code ec;
  fs::remove(dir / "manifest.sig", ec);
  if (cut != std::string::npos) write(dir / "manifest.sig", input.substr(cut + 9));
  medinfer::PackageOptions pinned;
  pinned.trusted_public_keys = {key().public_pem};
  pinned.allow_unsigned = true;
  for (const medinfer::PackageOptions& options : {medinfer::PackageOptions{}, pinned}) {
    try {
      (void)medinfer::verify_package(dir.string(), options);
    } catch (const medinfer::Error&) {
    }
  }
  return 0;
}
