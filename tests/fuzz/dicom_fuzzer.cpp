// libFuzzer harness for the DICOM readers: any bytes must end in a result or a medinfer::Error,
// never a crash, a hang, a sanitizer report or an allocation above -malloc_limit_mb.
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  medinfer::dicom::ReadOptions options;
  options.max_pixel_bytes = 64ull << 20;  // well under the harness's -malloc_limit_mb
  options.max_frames = 512;
  try {
    const auto pixels = medinfer::dicom::read_stored_pixels_from_memory(data, size, "fuzz", options);
    (void)medinfer::dicom::statistics(pixels);
  } catch (const medinfer::Error&) {
  }
  try {
    (void)medinfer::dicom::read_instance_from_memory(data, size, "fuzz", options);
  } catch (const medinfer::Error&) {
  }
  // The same bytes as a bare dataset handed over by a network receiver.
  options.transfer_syntax_uid = "1.2.840.10008.1.2";
  try {
    (void)medinfer::dicom::read_instance_from_memory(data, size, "fuzz", options);
  } catch (const medinfer::Error&) {
  }
  return 0;
}
