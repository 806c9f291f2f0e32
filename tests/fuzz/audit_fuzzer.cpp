// libFuzzer harness for the audit record parser and the chain verifier: the input is parsed as one
// record line, then verified as a whole chained log (with and without a witness file made of the same
// bytes). Any bytes must end in a result or a medinfer::Error.
#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {
namespace fs = std::filesystem;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  try {
    (void)medinfer::audit::from_json_line(input.substr(0, input.find('\n')));
  } catch (const medinfer::Error&) {
  }
  static const fs::path log = fs::temp_directory_path() / ("medinfer-audit-fuzz-" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream out(log, std::ios::binary | std::ios::trunc);
    out << input;
  }
  medinfer::audit::Keyring keys;
  keys.keys[0] = std::string(32, 'k');  // the key run.sh's seed log was written under
  keys.keys[1] = std::string(32, 'l');
  try {
    (void)medinfer::audit::verify_log(log.string(), keys, true);
  } catch (const medinfer::Error&) {
  }
  try {
    (void)medinfer::audit::verify_log_with_witness(log.string(), keys, log.string(), true);
  } catch (const medinfer::Error&) {
  }
  return 0;
}
