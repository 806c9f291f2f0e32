// The ceiling peer: the pipeline a skilled engineer writes in a day without the SDK. DCMTK dcmdata reads
// the pixels and the rescale, the manifest's window / area resize / normalise are applied by hand with
// OpenCV, LibTorch runs the model. One producer thread decodes and preprocesses into reused buffers,
// one inference thread runs batches of --batch. No audit, no fingerprint, no quality gate, no
// calibration beyond a sigmoid, no checks: what medinfer is compared against when it does all of those.
//
//   medinfer_handwritten_peer --model=DIR --files=DIR [--batch=8] [--rounds=3]
//
// Prints {"peer": "handwritten-cpp", "images_per_s": ...} (the median of the rounds).
#include <dcmtk/dcmdata/dctk.h>
#include <opencv2/imgproc.hpp>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kSide = 224;
// The benchmark packages' preprocessing (benchmarks/compare/make_throughput_data.py).
constexpr float kCenter = 40.0f, kWidth = 400.0f, kMean = 0.25f, kStd = 0.25f;

struct Slot {
  std::vector<float> hu;      // reused decode buffer
  cv::Mat resized;            // reused 224x224
  std::vector<float> tensor;  // 224*224, normalised
};

bool prepare(const std::string& path, Slot& s) {
  DcmFileFormat file;
  if (file.loadFile(path.c_str()).bad()) return false;
  DcmDataset* ds = file.getDataset();
  Uint16 rows = 0, cols = 0;
  ds->findAndGetUint16(DCM_Rows, rows);
  ds->findAndGetUint16(DCM_Columns, cols);
  Float64 slope = 1.0, intercept = 0.0;
  ds->findAndGetFloat64(DCM_RescaleSlope, slope);
  ds->findAndGetFloat64(DCM_RescaleIntercept, intercept);
  const Uint16* raw = nullptr;
  if (ds->findAndGetUint16Array(DCM_PixelData, raw).bad() || raw == nullptr) return false;
  const auto* px = reinterpret_cast<const Sint16*>(raw);
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  s.hu.resize(n);
  const float lo = kCenter - kWidth / 2;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(px[i] * slope + intercept);
    s.hu[i] = std::clamp((v - lo) / kWidth, 0.0f, 1.0f);
  }
  const cv::Mat in(rows, cols, CV_32F, s.hu.data());
  cv::resize(in, s.resized, cv::Size(kSide, kSide), 0, 0, cv::INTER_AREA);
  s.tensor.resize(kSide * kSide);
  const float* r = s.resized.ptr<float>();
  for (std::size_t i = 0; i < s.tensor.size(); ++i) s.tensor[i] = (r[i] - kMean) / kStd;
  return true;
}

double run_once(torch::jit::Module& model, const std::vector<std::string>& files, int batch) {
  const std::size_t ring = static_cast<std::size_t>(2 * batch);
  std::vector<Slot> slots(ring);
  std::deque<std::size_t> full, free_slots;
  for (std::size_t i = 0; i < ring; ++i) free_slots.push_back(i);
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  const auto start = std::chrono::steady_clock::now();
  std::thread producer([&] {
    for (const auto& f : files) {
      std::size_t slot;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return !free_slots.empty(); });
        slot = free_slots.front();
        free_slots.pop_front();
      }
      if (!prepare(f, slots[slot])) std::fprintf(stderr, "cannot read %s\n", f.c_str());
      {
        std::lock_guard<std::mutex> lock(m);
        full.push_back(slot);
      }
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_all();
  });
  at::internal::lazy_init_num_threads();
  c10::InferenceMode guard;
  torch::Tensor in = torch::empty({batch, 1, kSide, kSide});
  double checksum = 0.0;
  for (;;) {
    std::vector<std::size_t> taken;
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return full.size() >= static_cast<std::size_t>(batch) || (done && !full.empty()) || (done && full.empty()); });
      if (full.empty()) break;
      while (!full.empty() && taken.size() < static_cast<std::size_t>(batch)) {
        taken.push_back(full.front());
        full.pop_front();
      }
    }
    for (std::size_t k = 0; k < taken.size(); ++k) {
      std::memcpy(in.data_ptr<float>() + k * kSide * kSide, slots[taken[k]].tensor.data(), kSide * kSide * sizeof(float));
    }
    {
      std::lock_guard<std::mutex> lock(m);
      for (std::size_t s : taken) free_slots.push_back(s);
    }
    cv.notify_all();
    const torch::Tensor out = model.forward({in.narrow(0, 0, static_cast<std::int64_t>(taken.size()))}).toTensor();
    checksum += torch::sigmoid(out).sum().item<double>();
  }
  producer.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!(checksum >= 0)) std::fprintf(stderr, "bad output\n");
  return static_cast<double>(files.size()) / s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, files_dir;
  int batch = 8, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--model=", 0) == 0) model_dir = a.substr(8);
    else if (a.rfind("--files=", 0) == 0) files_dir = a.substr(8);
    else if (a.rfind("--batch=", 0) == 0) batch = std::stoi(a.substr(8));
    else if (a.rfind("--rounds=", 0) == 0) rounds = std::stoi(a.substr(9));
    else {
      std::fprintf(stderr, "usage: medinfer_handwritten_peer --model=DIR --files=DIR [--batch=N] [--rounds=N]\n");
      return 2;
    }
  }
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(files_dir)) {
    if (e.path().extension() == ".dcm") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty() || model_dir.empty()) {
    std::fprintf(stderr, "medinfer_handwritten_peer: --model and --files with .dcm files are required\n");
    return 2;
  }
  at::set_num_threads(1);  // the inference thread runs single-threaded, the producer has the other core
  torch::jit::Module model = torch::jit::load(model_dir + "/model.pt");
  model.eval();
  model = torch::jit::freeze(model);
  model = torch::jit::optimize_for_inference(model);
  run_once(model, files, batch);  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < rounds; ++r) rates.push_back(run_once(model, files, batch));
  std::sort(rates.begin(), rates.end());
  std::printf("{\"peer\": \"handwritten-cpp\", \"batch\": %d, \"images_per_s\": %.2f}\n", batch, rates[rates.size() / 2]);
  return 0;
}
