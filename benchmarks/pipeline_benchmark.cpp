// End-to-end (DICOM file -> Result) and inference benchmarks, with the bare LibTorch forward on the
// same tensors as the peer in the same run. Prints the ratios at the end.
//
//   medinfer_benchmark --study=DIR --model=DIR [google-benchmark flags]
//
// Ratios are what to read: this machine is noisy, absolute numbers drift between runs.
#include <medinfer/medinfer.hpp>

#include <benchmark/benchmark.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <array>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

namespace {

std::string g_study, g_model;
std::vector<std::string> g_files;

// Lazily built state shared by the benchmarks (built outside the timed loops).
struct State {
  std::optional<medinfer::Pipeline> pipeline;
  std::optional<medinfer::ModelPackage> package;
  std::optional<medinfer::Engine> engine;
  std::vector<medinfer::Tensor> tensors;  // the demo spec applied to each study image
  medinfer::preprocess::Spec spec;        // the package's own preprocessing
  torch::jit::Module bare;
};

State& state() {
  static State s = [] {
    State st;
    st.pipeline.emplace(medinfer::Pipeline::open(g_model));
    st.package.emplace(medinfer::ModelPackage::open(g_model));
    st.engine.emplace(medinfer::Engine::open(*st.package));
    // The package's preprocessing array, cut from its verified manifest text (no JSON library here).
    const std::string manifest = st.package->manifest_text();
    const auto begin = manifest.find('[', manifest.find("\"preprocessing\""));
    const auto end = manifest.find(']', manifest.find("\"normalize\"", begin));
    st.spec = medinfer::preprocess::parse_spec(manifest.substr(begin, end - begin + 1));
    for (const auto& f : g_files) st.tensors.push_back(medinfer::preprocess::apply(st.spec, medinfer::dicom::read_image(f)));
    // The peer: the same TorchScript file, loaded, frozen and optimised the way the SDK does.
    torch::jit::Module m = torch::jit::load(g_model + "/model.pt");
    m.eval();
    m = torch::jit::freeze(m);
    st.bare = torch::jit::optimize_for_inference(m);
    return st;
  }();
  return s;
}

void BM_EndToEnd_FileToResult(benchmark::State& s) {
  auto& st = state();
  std::size_t i = 0;
  for (auto _ : s) {
    benchmark::DoNotOptimize(st.pipeline->predict(g_files[i++ % g_files.size()]));
  }
  s.SetItemsProcessed(s.iterations());
}

// The demo spec on decoded HU images (the peer: the same steps in numpy and in OpenCV-python).
void BM_PreprocessDemoSpec(benchmark::State& s) {
  auto& st = state();
  static const std::vector<medinfer::Image> images = [] {
    std::vector<medinfer::Image> v;
    for (const auto& f : g_files) v.push_back(medinfer::dicom::read_image(f));
    return v;
  }();
  std::size_t i = 0;
  for (auto _ : s) benchmark::DoNotOptimize(medinfer::preprocess::apply(st.spec, images[i++ % images.size()]));
  s.SetItemsProcessed(s.iterations());
}

// Preprocessing a batch of 8 on both cores (apply_batch): the "both cores in use" figure.
void BM_PreprocessBatch8(benchmark::State& s) {
  auto& st = state();
  static const std::vector<medinfer::Image> images = [] {
    std::vector<medinfer::Image> v;
    for (std::size_t i = 0; i < 8; ++i) v.push_back(medinfer::dicom::read_image(g_files[i % g_files.size()]));
    return v;
  }();
  for (auto _ : s) benchmark::DoNotOptimize(medinfer::preprocess::apply_batch(st.spec, images, {}, 2));
  s.SetItemsProcessed(s.iterations() * 8);
}

// 8 client threads sending single images, with (arg 1) and without (arg 0) the dynamic batcher:
// throughput and per-request latency percentiles (issue 5's measurement).
void BM_Concurrent8(benchmark::State& s) {
  constexpr int kThreads = 8, kEach = 40;
  medinfer::PipelineOptions options;
  options.engine.intra_op_threads = static_cast<int>(s.range(1));
  if (s.range(0) == 1) {
    options.batching.max_batch_size = 4;  // measured best for the demo model on 2 cores (docs/benchmarks.md)
    options.batching.max_delay_us = 500;
    if (const char* e = std::getenv("BENCH_MAX_BATCH")) options.batching.max_batch_size = std::atoi(e);
    if (const char* e = std::getenv("BENCH_MAX_DELAY")) options.batching.max_delay_us = std::atoi(e);
  }
  const medinfer::Pipeline pipeline = medinfer::Pipeline::open(g_model, options);
  for (const auto& f : g_files) pipeline.predict(f);  // warm
  std::vector<double> latencies;
  std::mutex m;
  double seconds = 0.0;
  for (auto _ : s) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<double> mine;
        for (int i = 0; i < kEach; ++i) {
          const auto a = std::chrono::steady_clock::now();
          benchmark::DoNotOptimize(pipeline.predict(g_files[static_cast<std::size_t>(t + i) % g_files.size()]));
          mine.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
        }
        std::lock_guard<std::mutex> lock(m);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    }
    for (auto& th : threads) th.join();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) { return latencies[static_cast<std::size_t>(q * (latencies.size() - 1))]; };
  s.counters["images_per_s"] = static_cast<double>(latencies.size()) / seconds;
  s.counters["p50_ms"] = pct(0.50);
  s.counters["p95_ms"] = pct(0.95);
  s.counters["p99_ms"] = pct(0.99);
}

void BM_DicomRead(benchmark::State& s) {
  std::size_t i = 0;
  for (auto _ : s) benchmark::DoNotOptimize(medinfer::dicom::read_image(g_files[i++ % g_files.size()]));
  s.SetItemsProcessed(s.iterations());
}

void BM_EngineRun(benchmark::State& s) {
  auto& st = state();
  std::size_t i = 0;
  for (auto _ : s) benchmark::DoNotOptimize(st.engine->run(st.tensors[i++ % st.tensors.size()]));
  s.SetItemsProcessed(s.iterations());
}

void BM_BareTorchForward(benchmark::State& s) {
  auto& st = state();
  std::size_t i = 0;
  c10::InferenceMode guard;
  for (auto _ : s) {
    auto& t = st.tensors[i++ % st.tensors.size()];
    auto in = torch::from_blob(t.data.data(), t.shape, torch::kFloat32);
    auto out = st.bare.forward({in}).toTensor();
    benchmark::DoNotOptimize(out.data_ptr<float>()[0]);
  }
  s.SetItemsProcessed(s.iterations());
}

// Audit cost: the same end-to-end predict with each kind of audit sink (logs in a temp directory).
enum AuditKind { kNone, kPlainFile, kChainStrict, kChainBuffered };

void BM_PredictWithAudit(benchmark::State& s) {
  const auto kind = static_cast<AuditKind>(s.range(0));
  const auto dir = std::filesystem::temp_directory_path() / ("medinfer-bench-audit-" + std::to_string(kind));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  medinfer::audit::Keyring keys;
  keys.keys[0] = std::string(32, 'k');
  medinfer::PipelineOptions options;
  std::shared_ptr<medinfer::audit::ChainedFileSink> chain;
  if (kind == kPlainFile) options.audit_sink = medinfer::audit::FileSink::open((dir / "a.jsonl").string());
  if (kind == kChainStrict || kind == kChainBuffered) {
    medinfer::audit::ChainOptions co;
    co.durability = kind == kChainStrict ? medinfer::audit::Durability::kStrict : medinfer::audit::Durability::kBuffered;
    chain = medinfer::audit::ChainedFileSink::open((dir / "a.jsonl").string(), keys, co);
    options.audit_sink = chain;
    options.pseudonym_key = medinfer::audit::derive_pseudonym_key(keys);
  }
  {
    const auto pipeline = medinfer::Pipeline::open(g_model, options);
    std::size_t i = 0;
    for (auto _ : s) benchmark::DoNotOptimize(pipeline.predict(g_files[i++ % g_files.size()]));
    s.SetItemsProcessed(s.iterations());
  }
  if (chain) {
    chain->close();  // buffered: the drain is paid here, outside the timed loop
    s.counters["dropped"] = static_cast<double>(chain->dropped());
  }
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_DicomRead);
BENCHMARK(BM_PreprocessDemoSpec);
BENCHMARK(BM_BareTorchForward);
BENCHMARK(BM_EngineRun);
BENCHMARK(BM_EndToEnd_FileToResult);
BENCHMARK(BM_Concurrent8)->ArgNames({"batcher", "intra_op"})->Args({0, 1})->Args({1, 1})->Args({1, 2})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PredictWithAudit)->ArgName("sink")->Arg(kNone)->Arg(kPlainFile)->Arg(kChainStrict)->Arg(kChainBuffered);
// Last: after it, single-threaded predicts in this process ran ~3x slower (worker threads that
// OpenCV's TBB and LibTorch's OpenMP leave behind compete for the 2 cores): an open problem, see
// docs/benchmarks.md. Measured last so it does not skew the others.
BENCHMARK(BM_PreprocessBatch8)->UseRealTime();

// Collects each run's time per iteration to print ratios after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_None) {}  // plain text: the output is read by scripts and people
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Iteration) ns_[r.benchmark_name()] = r.GetAdjustedRealTime();
      if (r.benchmark_name().rfind("BM_Concurrent8", 0) == 0) {
        const bool batched = r.benchmark_name().find("batcher:1") != std::string::npos;
        const int threads = r.benchmark_name().find("intra_op:2") != std::string::npos ? 2 : 1;
        concurrent_[{batched, threads}] = {r.counters.at("images_per_s"), r.counters.at("p50_ms"),
                                           r.counters.at("p95_ms"), r.counters.at("p99_ms")};
      }
    }
  }
  std::map<std::pair<bool, int>, std::array<double, 4>> concurrent_;
  void print_ratios() const {
    for (const auto& [key, c] : concurrent_) {
      std::cout << "8 client threads, " << (key.first ? "with" : "without") << " the dynamic batcher, intra-op threads "
                << key.second << ": " << c[0] << " images/s, P50 " << c[1] << " ms, P95 " << c[2] << " ms, P99 "
                << c[3] << " ms\n";
    }
    const auto base = concurrent_.find({false, 1});
    for (int threads : {1, 2}) {
      const auto batched = concurrent_.find({true, threads});
      if (base != concurrent_.end() && batched != concurrent_.end()) {
        std::cout << "ratio batcher (intra-op " << threads << ") / no batcher (throughput, 8 threads): "
                  << batched->second[0] / base->second[0] << "x\n";
      }
    }
    auto get = [&](const char* n) { auto it = ns_.find(n); return it == ns_.end() ? 0.0 : it->second; };
    const double bare = get("BM_BareTorchForward"), engine = get("BM_EngineRun"), e2e = get("BM_EndToEnd_FileToResult");
    if (bare > 0 && engine > 0) {
      std::cout << "ratio EngineRun / BareTorchForward = " << engine / bare << " (SDK inference overhead: "
                << (engine / bare - 1.0) * 100.0 << " %)\n";
    }
    if (const double pre = get("BM_PreprocessDemoSpec"); pre > 0) {
      std::cout << "preprocess (demo spec): " << 1e9 / pre << " images/s\n";
    }
    if (const double batch = get("BM_PreprocessBatch8/real_time"); batch > 0) {
      std::cout << "preprocess batch of 8 on 2 threads (demo spec): " << 8e9 / batch << " images/s\n";
    }
    if (e2e > 0) std::cout << "end to end: " << 1e9 / e2e << " images/s, " << e2e / 1e6 << " ms per image\n";
    const double none = get("BM_PredictWithAudit/sink:0");
    const char* names[] = {"", "plain JSONL file", "chained, strict (fsync per record)", "chained, buffered"};
    for (int k = 1; k <= 3; ++k) {
      const double t = get(("BM_PredictWithAudit/sink:" + std::to_string(k)).c_str());
      if (none > 0 && t > 0) {
        std::cout << "audit cost, " << names[k] << ": +" << (t - none) / 1e3 << " us per prediction (ratio "
                  << t / none << " vs no audit)\n";
      }
    }
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--study=", 0) == 0) {
      g_study = a.substr(8);
    } else if (a.rfind("--model=", 0) == 0) {
      g_model = a.substr(8);
    } else {
      std::cerr << "unknown argument " << a << "\nusage: medinfer_benchmark --study=DIR --model=DIR [benchmark flags]\n";
      return 2;
    }
  }
  if (g_study.empty() || g_model.empty()) {
    std::cerr << "usage: medinfer_benchmark --study=DIR --model=DIR [benchmark flags]\n";
    return 2;
  }
  for (const auto& e : std::filesystem::directory_iterator(g_study)) {
    if (e.path().extension() == ".dcm") g_files.push_back(e.path().string());
  }
  std::sort(g_files.begin(), g_files.end());
  if (g_files.empty()) {
    std::cerr << "no .dcm files in " << g_study << "\n";
    return 2;
  }
  try {
    state();
  } catch (const std::exception& e) {
    std::cerr << "setup failed: " << e.what() << "\n";
    return 1;
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
