// Many images, series and threads: medinfer's predict_many, predict_series and predict() against
// the bounds of the same model run bare in LibTorch, in the same process and run. Prints one line per
// figure and a JSON object with every figure (the median of --rounds rounds) at the end.
//
//   medinfer_throughput_benchmark --model=DIR --files=DIR [--series=DIR] [--rounds=3] [--images=N]
//                                 [--only=a,b,...] [--grid] [--intra-op=N] [--busy]
//
// --busy: a child process spins on one core for the whole run (a machine that is never idle).
// --intra-op: LibTorch intra-op threads for the pipeline (EngineOptions::intra_op_threads).
//
// Figures (images/s unless said): one_by_one (predict, one thread), host_threads_8 (8 threads calling
// predict), many_w{W}_b{B} (predict_many, W workers, batch B), bare_bound_2x8 (the model alone, two
// threads each running batches of 8 on tensors preprocessed beforehand: the most both cores can do),
// engine_overhead_b{1,8} (Engine::run over a bare forward on the same tensor, one thread, in %),
// stage sums vs predict end to end (ms), p95 latency at 8 concurrent callers (ms), series_* (a whole
// series, files -> SeriesResult, against its slices' inference alone).
#include <medinfer/medinfer.hpp>

#include <ATen/Parallel.h>
#include <openssl/sha.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0.0;
  const double pos = q * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::vector<std::string> dicom_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".dcm") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Args {
  std::string model, files, series;
  int rounds = 3;
  int intra_op = 1;   // EngineOptions::intra_op_threads for the pipeline under test
  bool busy = false;  // a competing process keeps one core busy for the whole run
  std::size_t images = 0;
  std::set<std::string> only;
  bool grid = false;
};

// Figures, each the median of its rounds.
std::map<std::string, double> g_figures;
std::vector<std::string> g_order;

void report(const std::string& name, double value, const char* unit) {
  if (!g_figures.count(name)) g_order.push_back(name);
  g_figures[name] = value;
  std::printf("%s: %.4g %s\n", name.c_str(), value, unit);
  std::fflush(stdout);
}

class Bench {
 public:
  explicit Bench(const Args& a) : a_(a) {
    files_ = dicom_files(a.files);
    if (files_.empty()) throw std::runtime_error("no .dcm files in " + a.files);
    if (a.images > 0 && a.images < files_.size()) files_.resize(a.images);
    medinfer::PipelineOptions po;
    po.engine.intra_op_threads = a.intra_op;
    pipeline_.emplace(medinfer::Pipeline::open(a.model, po));
    package_.emplace(medinfer::ModelPackage::open(a.model));
    medinfer::EngineOptions eo;
    eo.intra_op_threads = a.intra_op;  // LibTorch's setting is process-wide: the last engine opened sets it
    engine_.emplace(medinfer::Engine::open(*package_, eo));
    for (const auto& f : files_) tensors_.push_back(pipeline_->prepare(f));
    torch::jit::Module m = torch::jit::load(a.model + "/model.pt");
    m.eval();
    m = torch::jit::freeze(m);
    bare_ = torch::jit::optimize_for_inference(m);
  }

  bool wanted(const std::string& name) const {
    if (a_.only.empty()) return true;
    for (const auto& o : a_.only) {
      if (name.rfind(o, 0) == 0) return true;
    }
    return false;
  }

  // images/s of `run` (which processes `count` images), median of the rounds, after one warm-up.
  void throughput(const std::string& name, std::size_t count, const std::function<void()>& run) {
    if (!wanted(name)) return;
    run();
    std::vector<double> rates;
    for (int r = 0; r < a_.rounds; ++r) {
      const auto t = Clock::now();
      run();
      rates.push_back(static_cast<double>(count) / seconds_since(t));
    }
    report(name, median(rates), "images/s");
  }

  void run_all() {
    const std::size_t n = files_.size();
    throughput("one_by_one", n, [&] {
      for (const auto& f : files_) (void)pipeline_->predict(f);
    });
    throughput("host_threads_8", n, [&] { host_threads(8, nullptr); });
    const std::vector<int> batches = a_.grid ? std::vector<int>{1, 2, 4, 8, 16} : std::vector<int>{4, 8};
    const std::vector<unsigned> workers = a_.grid ? std::vector<unsigned>{1, 2, 3, 4} : std::vector<unsigned>{1, 2};
    for (unsigned w : workers) {
      for (int b : batches) {
        throughput("many_w" + std::to_string(w) + "_b" + std::to_string(b), n, [&, w, b] { many(w, b); });
      }
    }
    throughput("bare_bound_2x8", n, [&] { bare_bound(2, 8); });
    throughput("bare_bound_1x8", n, [&] { bare_bound(1, 8); });
    if (wanted("engine_overhead")) {
      for (int b : {1, 8}) engine_overhead(b);
    }
    if (wanted("stages")) stages();
    if (wanted("latency")) latency(8);
    if (!a_.series.empty() && wanted("series")) series();
  }

 private:
  void host_threads(int threads, std::vector<double>* latencies) {
    std::vector<std::thread> pool;
    std::vector<std::vector<double>> lat(static_cast<std::size_t>(threads));
    std::atomic<std::size_t> next{0};
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (std::size_t i = next++; i < files_.size(); i = next++) {
          const auto s = Clock::now();
          (void)pipeline_->predict(files_[i]);
          lat[static_cast<std::size_t>(t)].push_back(1000.0 * seconds_since(s));
        }
      });
    }
    for (auto& th : pool) th.join();
    if (latencies) {
      for (auto& l : lat) latencies->insert(latencies->end(), l.begin(), l.end());
    }
  }

  void many(unsigned workers, int batch) {
    std::vector<medinfer::Input> inputs;
    for (const auto& f : files_) inputs.push_back(medinfer::Input::file(f));
    medinfer::ManyOptions o;
    o.workers = workers;
    o.batch_size = batch;
    std::size_t ok = 0;
    o.on_outcome = [&](medinfer::Outcome&& out) { ok += out.ok(); };
    pipeline_->predict_many(inputs, o);
    if (ok != inputs.size()) throw std::runtime_error("predict_many: some inputs failed");
  }

  // The model alone on the prepared tensors: `threads` threads, each running batches of `batch`.
  void bare_bound(int threads, int batch) {
    std::atomic<std::size_t> next{0};
    const std::size_t item = tensors_[0].data.size();
    auto work = [&] {
      // As the SDK's backend does on each thread: OpenMP regions sized by LibTorch's intra-op setting,
      // not by this new thread's own default (all cores), which would oversubscribe them.
      at::internal::lazy_init_num_threads();
      c10::InferenceMode guard;
      std::vector<std::int64_t> shape = tensors_[0].shape;
      torch::Tensor in = torch::empty({batch, shape[1], shape[2], shape[3]});
      for (;;) {
        const std::size_t start = next.fetch_add(static_cast<std::size_t>(batch));
        if (start >= tensors_.size()) return;
        const std::size_t count = std::min<std::size_t>(static_cast<std::size_t>(batch), tensors_.size() - start);
        for (std::size_t k = 0; k < count; ++k) {
          std::memcpy(in.data_ptr<float>() + k * item, tensors_[start + k].data.data(), item * sizeof(float));
        }
        auto x = in.narrow(0, 0, static_cast<std::int64_t>(count));
        (void)bare_.forward({x}).toTensor();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
  }

  void engine_overhead(int batch) {
    medinfer::Tensor in;
    in.shape = tensors_[0].shape;
    in.shape[0] = batch;
    for (int k = 0; k < batch; ++k) {
      const auto& t = tensors_[static_cast<std::size_t>(k) % tensors_.size()];
      in.data.insert(in.data.end(), t.data.begin(), t.data.end());
    }
    const int iters = std::max(8, 160 / batch);
    std::vector<double> engine, bare;
    for (int r = 0; r < a_.rounds * 3; ++r) {
      // Alternated, so drift on a noisy machine hits both alike.
      auto t = Clock::now();
      for (int i = 0; i < iters; ++i) (void)engine_->run(in);
      engine.push_back(seconds_since(t) / iters);
      t = Clock::now();
      {
        c10::InferenceMode guard;
        for (int i = 0; i < iters; ++i) {
          auto x = torch::from_blob(in.data.data(), in.shape, torch::kFloat32);
          (void)bare_.forward({x}).toTensor();
        }
      }
      bare.push_back(seconds_since(t) / iters);
    }
    const double e = median(engine), b = median(bare);
    report("engine_run_ms_b" + std::to_string(batch), 1000.0 * e, "ms");
    report("bare_forward_ms_b" + std::to_string(batch), 1000.0 * b, "ms");
    report("engine_overhead_b" + std::to_string(batch), 100.0 * (e / b - 1.0), "%");
  }

  void stages() {
    const medinfer::preprocess::Spec spec = spec_of();
    std::vector<double> decode, hash, pre, run, whole;
    for (int r = 0; r < a_.rounds; ++r) {
      for (const auto& f : files_) {
        auto t = Clock::now();
        const medinfer::dicom::Instance inst = medinfer::dicom::read_instance(f);
        decode.push_back(seconds_since(t));
        t = Clock::now();
        fingerprint(inst.image);
        hash.push_back(seconds_since(t));
        t = Clock::now();
        const medinfer::Tensor x = medinfer::preprocess::apply(spec, inst.image, medinfer::preprocess::context_from(inst.header));
        pre.push_back(seconds_since(t));
        t = Clock::now();
        (void)engine_->run(x);
        run.push_back(seconds_since(t));
        t = Clock::now();
        (void)pipeline_->predict(f);
        whole.push_back(seconds_since(t));
      }
    }
    const double sum = median(decode) + median(hash) + median(pre) + median(run);
    report("stage_decode_ms", 1000.0 * median(decode), "ms");
    report("stage_fingerprint_ms", 1000.0 * median(hash), "ms");
    report("stage_preprocess_ms", 1000.0 * median(pre), "ms");
    report("stage_engine_ms", 1000.0 * median(run), "ms");
    report("stage_sum_ms", 1000.0 * sum, "ms");
    report("predict_ms", 1000.0 * median(whole), "ms");
    report("predict_minus_stages_ms", 1000.0 * (median(whole) - sum), "ms");
  }

  void latency(int callers) {
    std::vector<double> lat;
    host_threads(callers, nullptr);  // warm
    for (int r = 0; r < a_.rounds; ++r) host_threads(callers, &lat);
    report("latency_p50_ms_8_callers", percentile(lat, 0.50), "ms");
    report("latency_p95_ms_8_callers", percentile(lat, 0.95), "ms");
    std::vector<double> single;
    for (int r = 0; r < a_.rounds; ++r) {
      for (const auto& f : files_) {
        const auto t = Clock::now();
        (void)pipeline_->predict(f);
        single.push_back(1000.0 * seconds_since(t));
      }
    }
    report("latency_p95_ms_1_caller", percentile(single, 0.95), "ms");
  }

  void series() {
    const std::vector<std::string> files = dicom_files(a_.series);
    std::vector<medinfer::Tensor> prepared;
    for (const auto& f : files) prepared.push_back(pipeline_->prepare(f));
    std::swap(prepared, tensors_);
    std::vector<double> whole, infer;
    (void)pipeline_->predict_series(files);  // warm
    for (int r = 0; r < a_.rounds; ++r) {
      auto t = Clock::now();
      const medinfer::SeriesResult s = pipeline_->predict_series(files);
      whole.push_back(seconds_since(t));
      if (s.slices != files.size()) throw std::runtime_error("predict_series: slices missing");
      t = Clock::now();
      bare_bound(2, 8);
      infer.push_back(seconds_since(t));
    }
    std::swap(prepared, tensors_);
    report("series_slices", static_cast<double>(files.size()), "slices");
    report("series_end_to_end_s", median(whole), "s");
    report("series_inference_alone_s", median(infer), "s");
    report("series_ratio", median(whole) / median(infer), "x (aim <= 1.2)");
  }

  // The input fingerprint predict() computes for its audit record and Result::input_sha256: SHA-256 of
  // a short head and the decoded pixels (docs/audit.md), here with OpenSSL directly.
  static void fingerprint(const medinfer::Image& image) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, image.data(), image.size_bytes());
    SHA256_Final(digest, &ctx);
  }

  medinfer::preprocess::Spec spec_of() const {
    const std::string manifest = package_->manifest_text();
    const auto begin = manifest.find('[', manifest.find("\"preprocessing\""));
    int depth = 0;
    std::size_t end = begin;
    for (; end < manifest.size(); ++end) {
      if (manifest[end] == '[') ++depth;
      if (manifest[end] == ']' && --depth == 0) break;
    }
    return medinfer::preprocess::parse_spec(manifest.substr(begin, end - begin + 1));
  }

  const Args& a_;
  std::vector<std::string> files_;
  std::optional<medinfer::Pipeline> pipeline_;
  std::optional<medinfer::ModelPackage> package_;
  std::optional<medinfer::Engine> engine_;
  std::vector<medinfer::Tensor> tensors_;
  torch::jit::Module bare_;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* key) -> std::optional<std::string> {
      const std::string k = std::string("--") + key + "=";
      if (arg.rfind(k, 0) == 0) return arg.substr(k.size());
      return std::nullopt;
    };
    if (auto v = value("model")) a.model = *v;
    else if (auto v = value("files")) a.files = *v;
    else if (auto v = value("series")) a.series = *v;
    else if (auto v = value("rounds")) a.rounds = std::stoi(*v);
    else if (auto v = value("images")) a.images = std::stoul(*v);
    else if (auto v = value("intra-op")) a.intra_op = std::stoi(*v);
    else if (arg == "--busy") a.busy = true;
    else if (auto v = value("only")) {
      std::stringstream ss(*v);
      for (std::string s; std::getline(ss, s, ',');) a.only.insert(s);
    } else if (arg == "--grid") a.grid = true;
    else {
      std::cerr << "usage: medinfer_throughput_benchmark --model=DIR --files=DIR [--series=DIR] [--rounds=N] "
                   "[--images=N] [--only=a,b] [--grid] [--intra-op=N] [--busy]\n";
      return 2;
    }
  }
  if (a.model.empty() || a.files.empty()) {
    std::cerr << "medinfer_throughput_benchmark: --model and --files are required\n";
    return 2;
  }
  pid_t busy = -1;
  if (a.busy) {
    // The competitor: another process spinning on one core for as long as the benchmark runs, as a
    // hospital server's other services do. Killed at the end.
    busy = fork();
    if (busy == 0) {
      volatile std::uint64_t x = 0;
      for (;;) x = x + 1;
    }
  }
  int status = 0;
  try {
    Bench b(a);
    b.run_all();
  } catch (const std::exception& e) {
    std::cerr << "medinfer_throughput_benchmark: " << e.what() << '\n';
    status = 1;
  }
  if (busy > 0) {
    kill(busy, SIGKILL);
    waitpid(busy, nullptr, 0);
  }
  if (status != 0) return status;
  std::printf("{");
  for (std::size_t i = 0; i < g_order.size(); ++i) {
    std::printf("%s\"%s\": %.6g", i ? ", " : "", g_order[i].c_str(), g_figures[g_order[i]]);
  }
  std::printf("}\n");
  return 0;
}
