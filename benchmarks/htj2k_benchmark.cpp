// HTJ2K decoders side by side on the same codestream: OpenJPEG 2.5 (which also decodes HTJ2K) and
// OpenJPH 0.9, through the reader's own codec functions (the module's object files are linked in).
// The faster is the one read_instance uses for the HTJ2K transfer syntaxes (docs/benchmarks.md).
//
//   medinfer_htj2k_benchmark --codestream=FILE.j2c --rows=N --columns=N --bits=B [benchmark flags]
#include "dicom/dicom_file.hpp"

#include <benchmark/benchmark.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string path;
  medinfer::dicom::detail::PixelFormat f;
  f.samples = 1;
  f.bits_allocated = 16;
  f.photometric = "MONOCHROME2";
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* key) { return a.rfind(key, 0) == 0 ? a.substr(std::string(key).size()) : std::string(); };
    if (!value("--codestream=").empty()) {
      path = value("--codestream=");
    } else if (!value("--rows=").empty()) {
      f.rows = static_cast<std::uint32_t>(std::stoul(value("--rows=")));
    } else if (!value("--columns=").empty()) {
      f.columns = static_cast<std::uint32_t>(std::stoul(value("--columns=")));
    } else if (!value("--bits=").empty()) {
      f.bits_stored = static_cast<std::uint16_t>(std::stoul(value("--bits=")));
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (path.empty() || f.rows == 0 || f.columns == 0 || f.bits_stored == 0) {
    std::cerr << "usage: medinfer_htj2k_benchmark --codestream=FILE --rows=N --columns=N --bits=B\n";
    return 2;
  }
  std::ifstream in(path, std::ios::binary);
  const std::vector<std::uint8_t> cs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::uint8_t> a(f.frame_out_bytes()), b(f.frame_out_bytes());
  medinfer::dicom::detail::decode_jpeg2000(cs.data(), cs.size(), f, path, a.data());
  medinfer::dicom::detail::decode_htj2k(cs.data(), cs.size(), f, path, b.data());
  if (a != b) {
    std::cerr << "OpenJPEG and OpenJPH decode " << path << " differently\n";
    return 1;
  }
  benchmark::RegisterBenchmark("htj2k/openjpeg", [&](benchmark::State& s) {
    for (auto _ : s) medinfer::dicom::detail::decode_jpeg2000(cs.data(), cs.size(), f, path, a.data());
    s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations() * a.size()));
  })->UseRealTime();
  benchmark::RegisterBenchmark("htj2k/openjph", [&](benchmark::State& s) {
    for (auto _ : s) medinfer::dicom::detail::decode_htj2k(cs.data(), cs.size(), f, path, b.data());
    s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations() * b.size()));
  })->UseRealTime();
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
