// HTJ2K decoders side by side on the same codestream: OpenJPEG 2.5 through the reader's own codec
// function (what read_instance uses), and OpenJPH 0.9 (Debian's libopenjph-dev) decoding the same
// bytes into the same layout. OpenJPH is faster but is not used by the readers: Debian's build aborts
// on hostile codestreams (an assert in parse_tile_header, a division by zero in pre_alloc: found by
// the DICOM fuzzer), see docs/dicom.md. Both must decode the codestream alike.
//
//   medinfer_htj2k_benchmark --codestream=FILE.j2c --rows=N --columns=N --bits=B [benchmark flags]
#include "dicom/dicom_file.hpp"

#include <benchmark/benchmark.h>
#include <openjph/ojph_arch.h>  // first: the other OpenJPH headers need its macros
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_params.h>

#include <cstdint>
#include <cstring>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

// One grayscale frame through OpenJPH, into 16-bit cells (trusted input: the benchmark's own file).
void decode_openjph(const std::vector<std::uint8_t>& cs, std::uint8_t* out) {
  ojph::mem_infile file;
  file.open(cs.data(), cs.size());
  ojph::codestream c;
  c.read_headers(&file);
  const ojph::param_siz siz = c.access_siz();
  const std::uint32_t width = siz.get_image_extent().x - siz.get_image_offset().x;
  const std::uint32_t height = siz.get_image_extent().y - siz.get_image_offset().y;
  c.set_planar(false);
  c.create();
  auto* o = reinterpret_cast<std::uint16_t*>(out);
  for (std::uint32_t y = 0; y < height; ++y) {
    ojph::ui32 comp = 0;
    const ojph::line_buf* line = c.pull(comp);
    for (std::uint32_t x = 0; x < width; ++x) o[std::size_t{y} * width + x] = static_cast<std::uint16_t>(line->i32[x]);
  }
  c.close();
}

}  // namespace

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
  decode_openjph(cs, b.data());
  if (a != b) {
    std::cerr << "OpenJPEG and OpenJPH decode " << path << " differently\n";
    return 1;
  }
  benchmark::RegisterBenchmark("htj2k/openjpeg", [&](benchmark::State& s) {
    for (auto _ : s) medinfer::dicom::detail::decode_jpeg2000(cs.data(), cs.size(), f, path, a.data());
    s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations() * a.size()));
  })->UseRealTime();
  benchmark::RegisterBenchmark("htj2k/openjph", [&](benchmark::State& s) {
    for (auto _ : s) decode_openjph(cs, b.data());
    s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations() * b.size()));
  })->UseRealTime();
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
