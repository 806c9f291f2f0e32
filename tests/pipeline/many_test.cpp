// Pipeline::predict_many: many inputs on every core, each with one outcome equal to predict()'s, in
// order, audited, bounded in memory, cancellable.
#include <medinfer/medinfer.hpp>

#include <catch2/catch.hpp>

#include "../support/linear_backend.hpp"
#include "../support/test_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>

using namespace medinfer;
using test::error_code_of;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> sample_files() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(test::sample_study_dir())) {
    if (e.path().extension() == ".dcm") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 8);
  return files;
}

std::size_t inference_records(const test::Recorder& recorder) {
  const auto records = recorder.records();
  return static_cast<std::size_t>(std::count_if(records.begin(), records.end(), [](const audit::Record& r) {
    return r.event == audit::EventType::kInference;
  }));
}

// The demo package, every audit record kept by `recorder`.
Pipeline audited_demo(test::Recorder& recorder) {
  PipelineOptions po;
  po.audit_sink = recorder.sink();
  return Pipeline::open(test::demo_model_dir().string(), po);
}

// Resident set size now, from /proc/self/statm (not the peak: what the process holds).
std::size_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST_CASE("predict_many gives each input predict()'s result, bit for bit, in input order", "[pipeline][many]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const auto files = sample_files();
  std::vector<Input> inputs;
  std::vector<Result> one_by_one;
  for (int round = 0; round < 3; ++round) {  // 30 inputs: batches of 8 with a partial last one
    for (const auto& f : files) {
      inputs.push_back(Input::file(f));
      if (round == 0) one_by_one.push_back(pipeline.predict(f));
    }
  }
  for (int batch : {1, 3, 8}) {
    for (unsigned workers : {1u, 2u, 3u}) {
      ManyOptions options;
      options.batch_size = batch;
      options.workers = workers;
      const std::vector<Outcome> outcomes = pipeline.predict_many(inputs, options);
      REQUIRE(outcomes.size() == inputs.size());
      for (std::size_t i = 0; i < outcomes.size(); ++i) {
        INFO("batch " << batch << " workers " << workers << " input " << i);
        CHECK(outcomes[i].index == i);
        REQUIRE(outcomes[i].ok());
        const Result& want = one_by_one[i % files.size()];
        const Result& got = *outcomes[i].result;
        CHECK(got.probability == want.probability);  // bit-identical
        CHECK(got.raw_score == want.raw_score);
        CHECK(got.tier == want.tier);
        CHECK(got.input_sha256 == want.input_sha256);
        CHECK(got.rule == want.rule);
      }
    }
  }
  // In-memory DICOM and images go through the same steps.
  std::ifstream in(files[0], std::ios::binary);
  auto bytes = std::make_shared<const std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const Image image = dicom::read_image(files[1]);
  const auto mixed = pipeline.predict_many({Input::dicom(bytes, "in-memory"), Input::pixels(image)});
  REQUIRE(mixed.size() == 2);
  REQUIRE(mixed[0].ok());
  REQUIRE(mixed[1].ok());
  CHECK(mixed[0].result->probability == one_by_one[0].probability);
  CHECK(mixed[1].result->probability == pipeline.predict(image).probability);
}

TEST_CASE("predict_many: a bad file among 1,000 gets its error, the other 999 their results, all audited",
          "[pipeline][many]") {
  test::TempDir dir;
  test::write_text(dir / "not-dicom.dcm", "this is not a DICOM file");
  test::Recorder recorder;
  const Pipeline pipeline = audited_demo(recorder);
  const auto files = sample_files();
  std::vector<Input> inputs;
  for (std::size_t i = 0; i < 1000; ++i) {
    inputs.push_back(Input::file(i == 500 ? (dir / "not-dicom.dcm").string() : files[i % files.size()]));
  }
  std::atomic<std::size_t> progress_calls{0};
  std::size_t last_done = 0;
  bool monotonic = true;
  ManyOptions options;
  options.progress = [&](std::size_t done, std::size_t total) {
    monotonic = monotonic && done == last_done + 1 && total == 1000;
    last_done = done;
    ++progress_calls;
  };
  const std::size_t before = inference_records(recorder);
  const auto outcomes = pipeline.predict_many(inputs, options);
  REQUIRE(outcomes.size() == 1000);
  std::size_t ok = 0;
  for (const auto& o : outcomes) ok += o.ok() ? 1 : 0;
  CHECK(ok == 999);
  REQUIRE_FALSE(outcomes[500].ok());
  CHECK(outcomes[500].error->code() == ErrorCode::kInvalidDicom);
  CHECK_THAT(outcomes[500].error->what(), Catch::Contains("not-dicom.dcm"));
  CHECK(progress_calls == 1000);
  CHECK(monotonic);
  CHECK(inference_records(recorder) - before == 1000);  // the failure audited too
}

TEST_CASE("predict_many: one input's non-finite logit fails that input only, not its batch", "[pipeline][many]") {
  test::register_linear_backend();
  test::TempDir dir;
  test::PackageSpec spec;
  spec.a = {0.01};
  spec.nan_above = 2.0;  // normalised mean above 2 (a window saturated by 3000 HU): NaN
  const fs::path pkg = test::make_package(dir / "pkg", spec);
  test::Recorder recorder;
  PipelineOptions po;
  po.audit_sink = recorder.sink();
  const Pipeline pipeline = Pipeline::open(pkg.string(), po);
  auto image = [](float hu) {
    Image im(PixelType::kFloat32, 64, 64);
    auto* p = static_cast<float*>(im.mutable_data());
    for (std::size_t i = 0; i < 64 * 64; ++i) p[i] = hu + static_cast<float>(i % 5);
    im.set_spacing({1.0, 1.0});
    return im;
  };
  std::vector<Input> inputs;
  for (int i = 0; i < 8; ++i) inputs.push_back(Input::pixels(image(i == 3 ? 3000.0f : 0.0f)));
  ManyOptions options;
  options.batch_size = 8;
  options.workers = 1;
  const auto outcomes = pipeline.predict_many(inputs, options);
  REQUIRE(outcomes.size() == 8);
  for (std::size_t i = 0; i < 8; ++i) {
    INFO(i);
    CHECK(outcomes[i].ok() == (i != 3));
  }
  REQUIRE(outcomes[3].error);
  CHECK(outcomes[3].error->code() == ErrorCode::kInternal);
  CHECK_THAT(outcomes[3].error->what(), Catch::Contains("non-finite"));
  CHECK(inference_records(recorder) == 8);
}

TEST_CASE("predict_many: cancelled mid-run, it returns with what finished; the rest end in kCancelled",
          "[pipeline][many]") {
  test::Recorder recorder;
  const Pipeline pipeline = audited_demo(recorder);
  const auto files = sample_files();
  std::vector<Input> inputs;
  for (std::size_t i = 0; i < 5000; ++i) inputs.push_back(Input::file(files[i % files.size()]));
  ManyOptions options;
  options.max_in_flight = 24;
  options.progress = [&](std::size_t done, std::size_t) {
    if (done == 40) options.cancel.cancel();
  };
  const std::size_t before = inference_records(recorder);
  const auto outcomes = pipeline.predict_many(inputs, options);
  REQUIRE(outcomes.size() == 5000);
  std::size_t ok = 0, cancelled = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].ok()) {
      ++ok;
      CHECK(cancelled == 0);  // in order: every finished input before every cancelled one
    } else {
      REQUIRE(outcomes[i].error->code() == ErrorCode::kCancelled);
      ++cancelled;
    }
  }
  CHECK(ok >= 40);
  CHECK(ok <= 40 + options.max_in_flight);  // only what was already in flight finished
  CHECK(ok + cancelled == 5000);
  CHECK(inference_records(recorder) - before == ok);  // finished ones audited, never-started ones not
}

TEST_CASE("predict_many: memory stays flat over 20,000 inputs", "[pipeline][many]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const auto files = sample_files();
  std::vector<std::shared_ptr<const std::string>> objects;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    objects.push_back(std::make_shared<const std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }
  auto run = [&](std::size_t n) {
    std::vector<Input> inputs;
    for (std::size_t i = 0; i < n; ++i) inputs.push_back(Input::dicom(objects[i % objects.size()], "object"));
    std::size_t ok = 0;
    ManyOptions options;
    options.on_outcome = [&](Outcome&& o) { ok += o.ok() ? 1 : 0; };
    CHECK(pipeline.predict_many(inputs, options).empty());  // outcomes went to the callback
    return ok;
  };
  CHECK(run(2000) == 2000);  // warm: allocator pools, thread caches
  const std::size_t before = rss_bytes();
  CHECK(run(20000) == 20000);
  const std::size_t after = rss_bytes();
  INFO("RSS before " << before / 1e6 << " MB, after " << after / 1e6 << " MB");
  // 20,000 inputs hold ~20,000 x 16 KB of pixels and tensors if nothing were released; in flight at
  // most 2 x 8 + 2 x workers. The input list itself (20,000 Input objects, ~3 MB) is the growth allowed.
  CHECK(after < before + 24 * 1024 * 1024);
}

TEST_CASE("predict_many: unordered delivery, options checked, empty input", "[pipeline][many]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const auto files = sample_files();
  std::vector<Input> inputs;
  for (std::size_t i = 0; i < 50; ++i) inputs.push_back(Input::file(files[i % files.size()]));
  ManyOptions options;
  options.ordered = false;
  const auto outcomes = pipeline.predict_many(inputs, options);
  std::set<std::size_t> seen;
  for (const auto& o : outcomes) seen.insert(o.index);
  CHECK(seen.size() == 50);
  CHECK(*seen.rbegin() == 49);
  CHECK(pipeline.predict_many({}).empty());
  std::string msg;
  ManyOptions bad;
  bad.batch_size = 0;
  CHECK(error_code_of([&] { pipeline.predict_many(inputs, bad); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("ManyOptions::batch_size"));
  bad = {};
  bad.max_in_flight = 200000;
  CHECK(error_code_of([&] { pipeline.predict_many(inputs, bad); }, &msg) == ErrorCode::kInvalidArgument);
  // A callback that throws stops the run; predict_many rethrows it.
  ManyOptions throwing;
  throwing.on_outcome = [](Outcome&&) { throw std::runtime_error("host callback failed"); };
  CHECK_THROWS_WITH(pipeline.predict_many(inputs, throwing), "host callback failed");
}
