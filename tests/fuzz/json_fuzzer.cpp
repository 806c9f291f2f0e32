// libFuzzer harness for the JSON an attacker can hand the library inside a package: the calibration,
// risk-policy and preprocessing parsers, for every task. Any bytes must end in a value or a
// medinfer::Error: never a crash, a sanitizer report, a hang, or a dependency's exception.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)medinfer::risk::parse_policy(text);
  } catch (const medinfer::Error&) {
  }
  for (const medinfer::Task task : {medinfer::Task::kBinary, medinfer::Task::kMultiLabel, medinfer::Task::kMultiClass}) {
    try {
      (void)medinfer::calibration::parse_calibration(text, task, task == medinfer::Task::kBinary ? 1 : 3);
    } catch (const medinfer::Error&) {
    }
  }
  try {
    (void)medinfer::preprocess::parse_spec(text);
  } catch (const medinfer::Error&) {
  }
  return 0;
}
