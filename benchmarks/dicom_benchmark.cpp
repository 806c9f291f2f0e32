// DICOM decoding throughput: every transfer syntax, a raw file read as the floor, and a 300-slice
// series to a Volume on both cores. The pydicom + numpy peer runs on the same files in the same
// run (benchmarks/compare/python_dicom.py); scripts/bench_dicom.sh prints the ratios.
//
//   medinfer_dicom_benchmark --data=DIR [google-benchmark flags]
//   medinfer_dicom_benchmark --peak-rss=FILE   decodes FILE once and prints the peak resident memory
//                                              (KiB); an empty FILE prints the baseline (the process
//                                              with DCMTK's dictionary loaded, nothing read)
//   DIR holds syntaxes/*.dcm and series/*.dcm (benchmarks/compare/make_dicom_bench_data.py).
#include <medinfer/medinfer.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::vector<std::string> dcm_files(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".dcm") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The floor: the file's bytes into memory, nothing else.
std::size_t raw_read(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  std::string bytes(static_cast<std::size_t>(n), '\0');
  const std::size_t got = std::fread(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  benchmark::DoNotOptimize(bytes.data());
  return got;
}

void set_counters(benchmark::State& s, std::size_t pixel_bytes_per_item, std::size_t items_per_iteration) {
  s.SetItemsProcessed(static_cast<std::int64_t>(s.iterations() * items_per_iteration));
  s.SetBytesProcessed(static_cast<std::int64_t>(s.iterations() * items_per_iteration * pixel_bytes_per_item));
}

}  // namespace

int main(int argc, char** argv) {
  std::string data;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--peak-rss=", 0) == 0) {
      const std::string file = a.substr(11);
      if (!file.empty()) {
        benchmark::DoNotOptimize(medinfer::dicom::read_stored_pixels(file));
      } else {
        try {  // the baseline still loads DCMTK's data dictionary (a few MB), as every read does
          (void)medinfer::dicom::read_header("/nonexistent/medinfer-baseline.dcm");
        } catch (const medinfer::Error&) {
        }
      }
      rusage usage{};
      getrusage(RUSAGE_SELF, &usage);
      std::cout << usage.ru_maxrss << "\n";
      return 0;
    }
    if (a.rfind("--data=", 0) == 0) {
      data = a.substr(7);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (data.empty()) {
    std::cerr << "usage: medinfer_dicom_benchmark --data=DIR [benchmark flags]\n";
    return 2;
  }
  const auto syntaxes = dcm_files(fs::path(data) / "syntaxes");
  const auto series = dcm_files(fs::path(data) / "series");
  if (syntaxes.empty() || series.empty()) {
    std::cerr << "no syntaxes/*.dcm or series/*.dcm under " << data << "\n";
    return 2;
  }
  for (const auto& path : syntaxes) {
    const std::string name = fs::path(path).stem().string();
    const auto px = medinfer::dicom::read_stored_pixels(path);  // also proves it decodes
    const std::size_t pixel_bytes = px.data.size();
    benchmark::RegisterBenchmark(("decode/" + name).c_str(), [path, pixel_bytes](benchmark::State& s) {
      for (auto _ : s) benchmark::DoNotOptimize(medinfer::dicom::read_stored_pixels(path));
      set_counters(s, pixel_bytes, 1);
    });
    benchmark::RegisterBenchmark(("raw_read/" + name).c_str(), [path, pixel_bytes](benchmark::State& s) {
      for (auto _ : s) benchmark::DoNotOptimize(raw_read(path));
      set_counters(s, pixel_bytes, 1);
    });
  }
  const std::string plain = syntaxes.front().substr(0, syntaxes.front().rfind('/')) + "/explicit_le.dcm";
  benchmark::RegisterBenchmark("read_image_modality_float/explicit_le", [plain](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(medinfer::dicom::read_image(plain));
    set_counters(s, 512 * 512 * 4, 1);
  });
  const std::size_t slice_bytes = medinfer::dicom::read_stored_pixels(series.front()).data.size();
  benchmark::RegisterBenchmark("series_raw_read", [series, slice_bytes](benchmark::State& s) {
    for (auto _ : s) {
      for (const auto& f : series) raw_read(f);
    }
    set_counters(s, slice_bytes, series.size());
  })->Unit(benchmark::kMillisecond);
  for (unsigned threads : {1u, 2u}) {
    benchmark::RegisterBenchmark(("series_to_volume/threads:" + std::to_string(threads)).c_str(),
                                 [series, slice_bytes, threads](benchmark::State& s) {
                                   medinfer::dicom::SeriesOptions o;
                                   o.strict = true;
                                   o.threads = threads;
                                   for (auto _ : s) benchmark::DoNotOptimize(medinfer::dicom::read_series(series, o));
                                   set_counters(s, slice_bytes, series.size());
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  // Issue 4's 3D spec on the series (512 x 512 x 300, 0.5 x 0.5 x 2 mm): window, resample to 1.5 mm
  // isotropic (box-averaged in x/y, linear in z), resize to 128^3, normalise. The same steps in
  // scipy/OpenCV-python are timed by benchmarks/compare/python_dicom.py.
  {
    medinfer::dicom::SeriesOptions o;
    o.strict = true;
    auto volume = std::make_shared<medinfer::Volume>(medinfer::dicom::read_series(series, o).volume);
    const auto spec = std::make_shared<medinfer::preprocess::Spec>(medinfer::preprocess::parse_spec(
        R"([{"step": "window", "center": 40, "width": 400},
            {"step": "resample", "spacing_mm": [1.5, 1.5, 1.5]},
            {"step": "resize", "width": 128, "height": 128, "depth": 128, "interpolation": "linear"},
            {"step": "normalize", "mean": 0.5, "std": 0.25}])"));
    for (unsigned threads : {1u, 2u}) {
      benchmark::RegisterBenchmark(("preprocess_volume_3d/threads:" + std::to_string(threads)).c_str(),
                                   [volume, spec, threads](benchmark::State& s) {
                                     for (auto _ : s) {
                                       benchmark::DoNotOptimize(
                                           medinfer::preprocess::apply_volume(*spec, *volume, {}, threads));
                                     }
                                   })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
