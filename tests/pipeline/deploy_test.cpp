// The engine's backend seam, multi-label / multi-class heads, hot swap and A/B routing, tested through
// Pipeline with a small backend registered by the test ("test-linear"): its logits are known exactly,
// so every probability, tier and routing decision can be checked against an independent value.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/model.hpp>
#include <medinfer/pipeline.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/linear_backend.hpp"
#include "../support/test_support.hpp"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace medinfer;
using test::error_code_of;
namespace fs = std::filesystem;
using nlohmann::json;
using test::gate;
using test::kRisk;
using test::make_package;
using test::PackageSpec;
using test::register_linear_backend;

namespace {

// A 64x64 HU image with a little contrast (not constant), spacing 1 mm (inside the demo's gate).
Image test_image(float level) {
  Image image(PixelType::kFloat32, 64, 64);
  auto* p = static_cast<float*>(image.mutable_data());
  for (std::size_t i = 0; i < 64 * 64; ++i) p[i] = level + static_cast<float>(i % 7);
  return image;
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Version 1.0.0 (logit -1) and `v2_version` (logit +1) of the same package, in dir/v1 and dir/v2.
std::pair<fs::path, fs::path> two_versions(const test::TempDir& dir, const std::string& v2_version, bool hold_v1 = false) {
  PackageSpec v1;
  v1.b = {-1.0};
  v1.hold = hold_v1;
  PackageSpec v2;
  v2.version = v2_version;
  v2.b = {1.0};
  return {make_package(dir / "v1", v1), make_package(dir / "v2", v2)};
}

}  // namespace

TEST_CASE("a backend registered by the host runs packages of its format through the whole pipeline",
          "[pipeline][deploy][backend]") {
  register_linear_backend();
  const auto formats = backend_formats();
  CHECK(std::find(formats.begin(), formats.end(), "torchscript") != formats.end());
  CHECK(std::find(formats.begin(), formats.end(), "test-linear") != formats.end());
  CHECK(error_code_of([] { register_backend("", [](const ModelPackage&, const EngineOptions&) { return std::unique_ptr<Backend>(); }); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { register_backend("x", nullptr); }) == ErrorCode::kInvalidArgument);

  test::TempDir dir;
  PackageSpec spec;
  spec.a = {0.5};
  spec.b = {-0.25};
  const fs::path pkg = make_package(dir / "linear", spec);
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  const Pipeline pipeline = Pipeline::open(pkg.string(), options);
  REQUIRE(recorder.records().size() == 1);
  CHECK_THAT(recorder.records()[0].detail, Catch::Contains("on test-linear"));

  // The logit is the backend's: a * mean(preprocessed input) + b, so two images give two logits.
  const Result dark = pipeline.predict(test_image(-500.0f));
  const Result bright = pipeline.predict(test_image(300.0f));
  CHECK(dark.raw_score < bright.raw_score);
  CHECK(dark.probability == Approx(sigmoid(dark.raw_score)).margin(1e-6));
  CHECK(dark.label == "lesion");
  REQUIRE(dark.findings.size() == 1);
  CHECK(dark.findings[0].probability == dark.probability);
  CHECK(dark.arm == Arm::kNone);

  // A backend returning the wrong shape is caught by Engine, for every backend alike.
  PackageSpec wrong;
  wrong.b = {0.0, 1.0};  // two logits for one label
  const fs::path bad = make_package(dir / "wrong", wrong);
  std::string msg;
  CHECK(error_code_of([&] { Pipeline::open(bad.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("returned shape [1, 2]") && Catch::Contains("output.count"));
}

TEST_CASE("a backend's own exceptions become kInternal errors, audited like every failure",
          "[pipeline][deploy][backend]") {
  register_linear_backend();
  test::TempDir dir;
  PackageSpec spec;
  spec.throw_above = 2.0;  // warm-up on zeros passes; a bright image (normalised mean ~3.1) makes it throw
  const fs::path pkg = make_package(dir / "throwing", spec);
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  const Pipeline pipeline = Pipeline::open(pkg.string(), options);
  CHECK_NOTHROW(pipeline.predict(test_image(-1000.0f)));
  std::string msg;
  CHECK(error_code_of([&] { pipeline.predict(test_image(1000.0f)); }, &msg) == ErrorCode::kInternal);
  CHECK_THAT(msg, Catch::Contains("'test-linear' backend failed") && Catch::Contains("mean above its limit"));
  const audit::Record last = recorder.records().back();
  CHECK(last.outcome == audit::Outcome::kError);
  CHECK(last.error_code == ErrorCode::kInternal);

  register_backend("test-throws-at-load", [](const ModelPackage&, const EngineOptions&) -> std::unique_ptr<Backend> {
    throw std::runtime_error("cannot parse");
  });
  const fs::path bad = make_package(dir / "load", spec);
  json m = json::parse(test::read_text(bad / "manifest.json"));
  m["model"]["format"] = "test-throws-at-load";
  test::write_text(bad / "manifest.json", m.dump());
  CHECK(error_code_of([&] { Pipeline::open(bad.string(), options); }, &msg) == ErrorCode::kInternal);
  CHECK_THAT(msg, Catch::Contains("failed to load the model: cannot parse"));
  CHECK(recorder.records().back().event == audit::EventType::kModelRefused);
}

TEST_CASE("half precision is refused on CPU with kUnsupported", "[pipeline][deploy][backend]") {
  EngineOptions half;
  half.half_precision = true;
  const ModelPackage package = ModelPackage::open(test::demo_model_dir().string());
  std::string msg;
  CHECK(error_code_of([&] { Engine::open(package, half); }, &msg) == ErrorCode::kUnsupported);
  CHECK_THAT(msg, Catch::Contains("half_precision"));
}

TEST_CASE("a multi-label head gives one calibrated finding per label, each under its own policy",
          "[pipeline][deploy][heads]") {
  register_linear_backend();
  test::TempDir dir;
  PackageSpec spec;
  spec.task = "multi-label";
  spec.labels = {"nodule", "effusion", "fracture"};
  spec.a = {0.0, 0.0, 0.0};
  spec.b = {2.0, -1.0, 0.5};
  spec.calibration = json::array({json{{"method", "temperature"}, {"temperature", 2.0}},
                                  json{{"method", "platt"}, {"a", -1.5}, {"b", 0.25}},
                                  json{{"method", "temperature"}, {"temperature", 1.0}}});
  const std::vector<double> expected = {
      calibration::Calibrator::temperature(2.0).apply(2.0),
      calibration::Calibrator::platt(-1.5, 0.25).apply(-1.0),
      calibration::Calibrator::temperature(1.0).apply(0.5)};
  CHECK(expected[0] == Approx(sigmoid(1.0)));

  SECTION("one policy for every label: the escalating finding is the primary one") {
    test::Recorder recorder;
    PipelineOptions options;
    options.audit_sink = recorder.sink();
    const Pipeline pipeline = Pipeline::open(make_package(dir / "ml", spec).string(), options);
    CHECK(pipeline.package()->task() == Task::kMultiLabel);
    CHECK(pipeline.package()->labels() == spec.labels);
    const Result r = pipeline.predict(test_image(0.0f));
    REQUIRE(r.findings.size() == 3);
    for (std::size_t k = 0; k < 3; ++k) {
      INFO(spec.labels[k]);
      CHECK(r.findings[k].label == spec.labels[k]);
      CHECK(r.findings[k].raw_score == Approx(spec.b[k]));
      CHECK(r.findings[k].probability == Approx(expected[k]).margin(1e-6));
      CHECK(r.findings[k].tier == (expected[k] >= 0.6 ? "high" : "low"));
      CHECK(r.findings[k].escalate == (expected[k] >= 0.7));
    }
    CHECK(r.label == "nodule");  // 0.731: escalates
    CHECK(r.probability == r.findings[0].probability);
    CHECK(r.escalate);
    // The audit record names every label's score.
    const audit::Record rec = recorder.records().back();
    CHECK(rec.finding.label == "nodule");
    REQUIRE(rec.findings.size() == 3);
    CHECK(rec.findings[1].label == "effusion");
    CHECK(rec.findings[1].probability == Approx(expected[1]).margin(1e-6));
    const audit::Record round_trip = audit::from_json_line(audit::to_json_line(rec));
    REQUIRE(round_trip.findings.size() == 3);
    CHECK(round_trip.findings[2].tier == rec.findings[2].tier);
    CHECK(round_trip.finding.label == "nodule");
    // Per-label reason and rule reach the audit trail (the same Finding the Result holds).
    CHECK(round_trip.findings[1].rule == r.findings[1].rule);
    CHECK(round_trip.findings[1].reason == r.findings[1].reason);
  }
  SECTION("one policy per label: a lower probability that escalates under its policy comes first") {
    json strict = kRisk;
    strict["escalation_threshold"] = 0.95;
    json sensitive = kRisk;
    sensitive["escalation_threshold"] = 0.1;
    spec.risk = json::array({strict, sensitive, strict});
    const Pipeline pipeline = Pipeline::open(make_package(dir / "ml2", spec).string());
    const Result r = pipeline.predict(test_image(0.0f));
    CHECK_FALSE(r.findings[0].escalate);
    CHECK(r.findings[1].escalate);
    CHECK(r.label == "effusion");
    CHECK(r.probability == r.findings[1].probability);
  }
  SECTION("no finding escalates: the highest probability is the primary one") {
    json calm = kRisk;
    calm["escalation_threshold"] = 0.99;
    spec.risk = calm;
    const Result r = Pipeline::open(make_package(dir / "ml3", spec).string()).predict(test_image(0.0f));
    CHECK(r.label == "nodule");  // 0.731 > 0.622 > 0.269
    CHECK_FALSE(r.escalate);
  }
  SECTION("calibration and risk must match the label count") {
    std::string msg;
    PackageSpec one = spec;
    one.calibration = json{{"method", "temperature"}, {"temperature", 1.0}};
    CHECK(error_code_of([&] { Pipeline::open(make_package(dir / "c1", one).string()); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains("calibration") && Catch::Contains("one per label"));
    PackageSpec two = spec;
    two.risk = json::array({kRisk, kRisk});
    CHECK(error_code_of([&] { Pipeline::open(make_package(dir / "r2", two).string()); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains("risk: 2 policies for 3 label(s)"));
  }
}

TEST_CASE("a multi-class head gives softmax(z / T) over its classes", "[pipeline][deploy][heads]") {
  register_linear_backend();
  test::TempDir dir;
  PackageSpec spec;
  spec.task = "multi-class";
  spec.labels = {"normal", "benign", "malignant"};
  spec.a = {0.0, 0.0, 0.0};
  spec.b = {1.0, 0.0, 2.0};
  spec.calibration = json{{"method", "temperature"}, {"temperature", 2.0}};
  json calm = kRisk;
  calm["escalation_threshold"] = 0.99;
  spec.risk = calm;
  const Result r = Pipeline::open(make_package(dir / "mc", spec).string()).predict(test_image(0.0f));
  const double e0 = std::exp(0.5), e1 = std::exp(0.0), e2 = std::exp(1.0);
  const double sum = e0 + e1 + e2;
  REQUIRE(r.findings.size() == 3);
  CHECK(r.findings[0].probability == Approx(e0 / sum).margin(1e-9));
  CHECK(r.findings[1].probability == Approx(e1 / sum).margin(1e-9));
  CHECK(r.findings[2].probability == Approx(e2 / sum).margin(1e-9));
  CHECK(r.findings[0].probability + r.findings[1].probability + r.findings[2].probability == Approx(1.0));
  CHECK(r.label == "malignant");

  std::string msg;
  spec.calibration = json{{"method", "platt"}, {"a", -1.0}, {"b", 0.0}};
  CHECK(error_code_of([&] { Pipeline::open(make_package(dir / "mc2", spec).string()); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("calibration") && Catch::Contains("one temperature"));
}

TEST_CASE("routing buckets are deterministic, uniform, and monotone in the split", "[pipeline][deploy][ab]") {
  CHECK(routing_bucket("1.2.3") == routing_bucket("1.2.3"));
  CHECK(routing_bucket("1.2.3") != routing_bucket("1.2.4"));
  int below = 0;
  for (int i = 0; i < 10000; ++i) {
    const double b = routing_bucket("study-" + std::to_string(i));
    REQUIRE(b >= 0.0);
    REQUIRE(b < 1.0);
    below += b < 0.3;
  }
  CHECK(below > 2800);  // binomial(10000, 0.3): sd 46
  CHECK(below < 3200);
}

TEST_CASE("hot swap: calls in flight finish on the old model, later calls use the new one",
          "[pipeline][deploy][swap]") {
  register_linear_backend();
  test::TempDir dir;
  const auto [p1, p2] = two_versions(dir, "2.0.0", /*hold_v1=*/true);
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  Pipeline pipeline = Pipeline::open(p1.string(), options);
  // Warm-up at open passed the gate (open by default). Now close it: the next v1 call waits inside run().
  {
    std::lock_guard<std::mutex> lock(gate().mutex);
    gate().open = false;
  }
  Result in_flight;
  std::thread caller([&] { in_flight = pipeline.predict(test_image(0.0f)); });
  {
    std::unique_lock<std::mutex> lock(gate().mutex);
    gate().cv.wait(lock, [] { return gate().inside == 1; });
  }
  // The swap completes while v1 still has a call inside its backend.
  const ModelIdentity now = pipeline.swap_model(p2.string());
  CHECK(now.version == "2.0.0");
  CHECK(pipeline.model().version == "2.0.0");
  const Result after = pipeline.predict(test_image(0.0f));
  CHECK(after.model.version == "2.0.0");
  CHECK(after.raw_score == Approx(1.0));
  {
    std::lock_guard<std::mutex> lock(gate().mutex);
    gate().open = true;
  }
  gate().cv.notify_all();
  caller.join();
  CHECK(in_flight.model.version == "1.0.0");
  CHECK(in_flight.raw_score == Approx(-1.0));

  bool swapped_recorded = false;
  for (const auto& r : recorder.records()) {
    if (r.event == audit::EventType::kConfigurationChange) {
      swapped_recorded = true;
      CHECK_THAT(r.detail, Catch::Contains("model swapped") && Catch::Contains("1.0.0") && Catch::Contains("2.0.0"));
    }
  }
  CHECK(swapped_recorded);

  // A package that fails to open leaves the serving model in place.
  std::string msg;
  CHECK(error_code_of([&] { pipeline.swap_model((dir / "missing").string()); }, &msg) == ErrorCode::kNotFound);
  CHECK(pipeline.model().version == "2.0.0");
  CHECK(pipeline.predict(test_image(0.0f)).model.version == "2.0.0");
}

TEST_CASE("a swap under load loses no request and never mixes models up", "[pipeline][deploy][swap]") {
  register_linear_backend();
  test::TempDir dir;
  const auto [p1, p2] = two_versions(dir, "2.0.0");
  for (int batching : {0, 4}) {
    INFO("max_batch_size " << batching);
    PipelineOptions options;
    options.batching.max_batch_size = batching;
    options.batching.max_delay_us = 200;
    Pipeline pipeline = Pipeline::open(p1.string(), options);
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, wrong{0}, failed{0}, on_v2{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        const Image image = test_image(0.0f);
        while (!stop) {
          try {
            const Result r = pipeline.predict(image);
            const bool v2_result = r.model.version == "2.0.0";
            const double want = v2_result ? 1.0 : -1.0;
            (std::abs(r.raw_score - want) < 1e-6 && std::abs(r.probability - sigmoid(want)) < 1e-6 ? ok : wrong)++;
            on_v2 += v2_result;
          } catch (...) {
            failed++;
          }
        }
      });
    }
    for (int i = 0; i < 10; ++i) {
      pipeline.swap_model((i % 2 == 0 ? p2 : p1).string());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop = true;
    for (auto& t : threads) t.join();
    CHECK(failed == 0);
    CHECK(wrong == 0);
    CHECK(ok > 0);
    CHECK(on_v2 > 0);
    CHECK(pipeline.model().version == "1.0.0");
  }
}

TEST_CASE("A/B routing sends a deterministic share of studies to the candidate", "[pipeline][deploy][ab]") {
  register_linear_backend();
  test::TempDir dir;
  const auto [p1, p2] = two_versions(dir, "1.1.0");
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  Pipeline pipeline = Pipeline::open(p1.string(), options);
  std::string msg;
  CHECK(error_code_of([&] { pipeline.start_ab_test(p2.string(), 1.5); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { pipeline.promote_candidate(); }) == ErrorCode::kInvalidArgument);

  CHECK(pipeline.start_ab_test(p2.string(), 0.3).version == "1.1.0");
  const Deployment d = pipeline.deployment();
  CHECK(d.primary.version == "1.0.0");
  CHECK(d.candidate.version == "1.1.0");
  CHECK(d.candidate_fraction == 0.3);

  const Image image = test_image(0.0f);
  int to_candidate = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "1.2.826.0.1." + std::to_string(i);
    const Result r = pipeline.predict(image, key);
    const bool candidate = routing_bucket(key) < 0.3;
    INFO(key);
    CHECK(r.arm == (candidate ? Arm::kCandidate : Arm::kPrimary));
    CHECK(r.model.version == (candidate ? "1.1.0" : "1.0.0"));
    CHECK(r.raw_score == Approx(candidate ? 1.0 : -1.0));
    const audit::Record last = recorder.records().back();
    CHECK(last.arm == r.arm);
    CHECK(last.model.version == r.model.version);
    to_candidate += candidate;
    CHECK(pipeline.predict(image, key).arm == r.arm);  // the same study, the same arm
  }
  CHECK(to_candidate > 60);
  CHECK(to_candidate < 120);

  // Files are routed by their Study Instance UID.
  for (const std::string study : {"1.2.3.4.5", "1.2.3.4.6", "1.2.3.4.7", "1.2.3.4.8"}) {
    test::DicomSpec s;
    s.rows = s.columns = 64;
    s.pixel_spacing = "1\\1";
    s.study_uid = study;
    const fs::path file = dir / (study + ".dcm");
    test::write_dicom(file, s);
    const Result r = pipeline.predict(file.string());
    CHECK(r.arm == (routing_bucket(study) < 0.3 ? Arm::kCandidate : Arm::kPrimary));
  }

  CHECK(pipeline.promote_candidate().version == "1.1.0");
  CHECK(pipeline.deployment().candidate.version.empty());
  const Result after = pipeline.predict(image, "any");
  CHECK(after.model.version == "1.1.0");
  CHECK(after.arm == Arm::kNone);

  pipeline.start_ab_test(p1.string(), 1.0);
  CHECK(pipeline.predict(image, "x").model.version == "1.0.0");
  pipeline.stop_ab_test();
  CHECK(pipeline.predict(image, "x").model.version == "1.1.0");
  pipeline.stop_ab_test();  // no test: no-op
}

// ---- One definition of a valid package: what the library writes, it opens ----

TEST_CASE("package::create refuses a template Pipeline::open would refuse, and leaves no package behind",
          "[pipeline][package]") {
  test::TempDir dir;
  const fs::path good = make_package(dir / "src", PackageSpec{});
  json m = json::parse(test::read_text(good / "manifest.json"));
  m["risk"]["tiers"][1]["min_probability"] = 0.0;  // not increasing: Pipeline::open refuses it
  m.erase("files");
  test::write_text(dir / "template.json", m.dump());
  std::string message;
  CHECK(error_code_of([&] { package::create((good / "model.json").string(), (dir / "template.json").string(),
                                            (dir / "out").string()); },
                      &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("risk.tiers[1].min_probability"));
  CHECK_FALSE(fs::exists(dir / "out" / "manifest.json"));  // nothing that looks like a package
}

TEST_CASE("package::sign signs only a package Pipeline::open accepts, and names a malformed private key",
          "[pipeline][package]") {
  test::TempDir dir;
  PackageSpec spec;
  spec.task = "multi-label";
  spec.labels = {"a", "b"};
  spec.a = spec.b = {0.0, 0.0};
  spec.calibration = json{{"method", "temperature"}, {"temperature", 1.0}};  // one calibrator for two labels
  const fs::path bad = make_package(dir / "bad", spec);
  const package::SigningKey key = package::generate_signing_key();
  std::string message;
  CHECK(error_code_of([&] { package::sign(bad.string(), key.private_pem); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("calibration"));
  CHECK_FALSE(fs::exists(bad / "manifest.sig"));
  const fs::path good = make_package(dir / "good", PackageSpec{});
  // Truncated inside its base64 body (still says "PRIVATE KEY" in its header).
  const std::string broken = key.private_pem.substr(0, 40) + "\n-----END PRIVATE KEY-----\n";
  for (const std::string& pem : {broken, key.public_pem, std::string("not a key")}) {
    CHECK(error_code_of([&] { package::sign(good.string(), pem); }, &message) == ErrorCode::kInvalidArgument);
    CHECK_THAT(message, Catch::Contains("not an Ed25519 private key"));
  }
}

TEST_CASE("write_recalibrated respects the task, and what it writes opens", "[pipeline][package]") {
  register_linear_backend();
  test::TempDir dir;
  using calibration::Calibrator;
  const std::string report = R"({"note": "test"})";

  const fs::path binary = make_package(dir / "binary", PackageSpec{});
  const ModelIdentity b = package::write_recalibrated(binary.string(), {Calibrator::platt(-2.0, 0.5)}, report,
                                                      (dir / "binary-next").string());
  CHECK(b.version == "1.1.0");
  const Pipeline pb = Pipeline::open((dir / "binary-next").string());
  CHECK(pb.predict(test_image(0.0f)).probability == Approx(Calibrator::platt(-2.0, 0.5).apply(0.0)));
  const json written_report = json::parse(test::read_text(dir / "binary-next" / "calibration_report.json"));
  CHECK(written_report["note"] == "test");
  CHECK_THAT(written_report["derived_from"].get<std::string>(), Catch::StartsWith("demo-ct-lesion 1.0.0"));

  PackageSpec ml;
  ml.task = "multi-label";
  ml.labels = {"nodule", "effusion", "fracture"};
  ml.a = {0.0, 0.0, 0.0};
  ml.b = {2.0, -1.0, 0.5};
  ml.calibration = json::array({json{{"method", "temperature"}, {"temperature", 1.0}},
                                json{{"method", "temperature"}, {"temperature", 1.0}},
                                json{{"method", "temperature"}, {"temperature", 1.0}}});
  const fs::path multi_label = make_package(dir / "ml", ml);
  std::string message;
  CHECK(error_code_of([&] { package::write_recalibrated(multi_label.string(), {Calibrator::temperature(2.0)}, report,
                                                        (dir / "ml-one").string()); },
                      &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("1 calibrator(s) for 3 label(s)"));
  CHECK_FALSE(fs::exists(dir / "ml-one" / "manifest.json"));
  const std::vector<Calibrator> three = {Calibrator::temperature(2.0), Calibrator::platt(-1.5, 0.25),
                                         Calibrator::temperature(0.5)};
  package::write_recalibrated(multi_label.string(), three, report, (dir / "ml-next").string());
  const Result r = Pipeline::open((dir / "ml-next").string()).predict(test_image(0.0f));
  REQUIRE(r.findings.size() == 3);
  CHECK(r.findings[1].probability == Approx(Calibrator::platt(-1.5, 0.25).apply(-1.0)));
  CHECK(r.findings[2].probability == Approx(Calibrator::temperature(0.5).apply(0.5)));

  PackageSpec mc = ml;
  mc.task = "multi-class";
  mc.calibration = json{{"method", "temperature"}, {"temperature", 1.0}};
  const fs::path multi_class = make_package(dir / "mc", mc);
  CHECK(error_code_of([&] { package::write_recalibrated(multi_class.string(), three, report, (dir / "mc-3").string()); },
                      &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("one temperature"));
  CHECK(error_code_of([&] { package::write_recalibrated(multi_class.string(), {Calibrator::platt(1, 0)}, report,
                                                        (dir / "mc-platt").string()); }) == ErrorCode::kInvalidArgument);
  package::write_recalibrated(multi_class.string(), {Calibrator::temperature(2.0)}, report, (dir / "mc-next").string());
  const Result c = Pipeline::open((dir / "mc-next").string()).predict(test_image(0.0f));
  const double z = std::exp(2.0 / 2.0) + std::exp(-1.0 / 2.0) + std::exp(0.5 / 2.0);
  CHECK(c.findings[0].probability == Approx(std::exp(2.0 / 2.0) / z));
  CHECK(package::next_minor_version("2.9.3") == "2.10.0");
  CHECK(error_code_of([] { package::next_minor_version("two"); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("calibration owns every probability: probabilities() for each task", "[pipeline][package][heads]") {
  using calibration::Calibrator;
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f};
  const auto mc = calibration::probabilities({Calibrator::temperature(2.0)}, Task::kMultiClass, logits);
  double sum = 0.0;
  for (double p : mc) sum += p;
  CHECK(sum == Approx(1.0));
  CHECK(mc[0] == Approx(std::exp(1.0) / (std::exp(1.0) + std::exp(-0.5) + std::exp(0.25))));
  const auto ml = calibration::probabilities({Calibrator::temperature(1.0), Calibrator::platt(-1, 0), Calibrator()},
                                             Task::kMultiLabel, logits);
  CHECK(ml[1] == Approx(1.0 / (1.0 + std::exp(1.0))));
  CHECK(error_code_of([&] { calibration::probabilities({Calibrator()}, Task::kMultiLabel, logits); }) ==
        ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { calibration::probabilities({Calibrator::platt(1, 0)}, Task::kBinary, {NAN}); }) ==
        ErrorCode::kInvalidArgument);
  // The multi-class temperature fit finds the NLL's minimum (classes overlap: an interior optimum).
  std::vector<std::vector<double>> rows;
  std::vector<int> classes;
  for (int i = 0; i < 300; ++i) {
    const int y = i % 3;
    std::vector<double> z = {0.1 * (i % 7), 0.1 * (i % 5), 0.1 * (i % 3)};
    z[static_cast<std::size_t>(y)] += 0.3;
    rows.push_back(z);
    classes.push_back(y);
  }
  const Calibrator t = calibration::fit_multiclass_temperature(rows, classes);
  CHECK(t.parameters()[0] > std::exp(-4.9));
  CHECK(t.parameters()[0] < std::exp(4.9));
  auto nll = [&](double temperature) {
    double s = 0.0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const std::vector<float> z(rows[i].begin(), rows[i].end());
      s -= std::log(calibration::probabilities({Calibrator::temperature(temperature)}, Task::kMultiClass, z)
                        [static_cast<std::size_t>(classes[i])]);
    }
    return s;
  };
  CHECK(nll(t.parameters()[0]) <= nll(t.parameters()[0] * 1.05));
  CHECK(nll(t.parameters()[0]) <= nll(t.parameters()[0] / 1.05));
}

TEST_CASE("a pseudonym key shorter than 16 bytes is refused at open (dicom::pseudonymize's rule)",
          "[pipeline][package]") {
  register_linear_backend();
  test::TempDir dir;
  const fs::path pkg = make_package(dir / "p", PackageSpec{});
  PipelineOptions options;
  options.pseudonym_key = "short";
  std::string message;
  CHECK(error_code_of([&] { Pipeline::open(pkg.string(), options); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("pseudonym_key") && Catch::Contains("at least 16"));
  options.pseudonym_key = std::string(16, 'k');
  CHECK_NOTHROW(Pipeline::open(pkg.string(), options));
}

TEST_CASE("a non-finite logit is refused by Engine::run (kInternal), audited, never scored", "[pipeline][deploy][backend]") {
  register_linear_backend();
  test::TempDir dir;
  PackageSpec spec;
  spec.a = {1e39};  // finite on the warm-up's zeros, infinite on any image with a positive mean
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  const Pipeline pipeline = Pipeline::open(make_package(dir / "p", spec).string(), options);
  std::string message;
  CHECK(error_code_of([&] { pipeline.predict(test_image(10.0f)); }, &message) == ErrorCode::kInternal);
  CHECK_THAT(message, Catch::Contains("non-finite logit") && Catch::Contains("demo-ct-lesion 1.0.0"));
  const audit::Record last = recorder.records().back();
  CHECK(last.outcome == audit::Outcome::kError);
  CHECK(last.error_code == ErrorCode::kInternal);
}

TEST_CASE("audit records carry no package path, a non-empty bounded actor, and bounded host text",
          "[pipeline][deploy][security]") {
  register_linear_backend();
  test::TempDir dir;
  const fs::path named = dir / "DOE-JANE-1961";  // paths often carry patient names
  const fs::path pkg = make_package(named, PackageSpec{});
  test::Recorder recorder;
  PipelineOptions options;
  options.audit_sink = recorder.sink();
  options.actor = {"", "host-app"};
  const Pipeline pipeline = Pipeline::open(pkg.string(), options);
  fs::copy(pkg, named / "broken", fs::copy_options::recursive);
  test::write_text(named / "broken" / "manifest.json", "{ not json");
  CHECK(error_code_of([&] { Pipeline::open((named / "broken").string(), options); }) == ErrorCode::kInvalidArgument);
  const auto records = recorder.records();
  REQUIRE(records.size() == 2);
  CHECK(records[0].event == audit::EventType::kModelOpened);
  CHECK(records[1].event == audit::EventType::kModelRefused);
  for (const audit::Record& r : records) {
    const std::string line = audit::to_json_line(r);
    CHECK(line.find("DOE-JANE") == std::string::npos);
    CHECK(line.find(dir.path().string()) == std::string::npos);
    CHECK_FALSE(r.actor.user_id.empty());  // the OS account (or "unknown"), never ""
  }
  CHECK_THAT(records[0].detail, Catch::Contains("demo-ct-lesion 1.0.0"));
  CHECK_THAT(records[1].error_message, Catch::Contains("<package>"));
  PipelineOptions huge = options;
  huge.actor.user_id = std::string(100 * 1024, 'u');
  std::string message;
  CHECK(error_code_of([&] { Pipeline::open(pkg.string(), huge); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("user_id") && Catch::Contains("at most 256"));
  CHECK(error_code_of([&] { pipeline.record_event(audit::EventType::kOverride, std::string(5000, 'x')); }) ==
        ErrorCode::kInvalidArgument);
  fs::create_symlink(dir / "loop-b.dcm", dir / "loop-a.dcm");
  fs::create_symlink(dir / "loop-a.dcm", dir / "loop-b.dcm");
  CHECK(error_code_of([&] { pipeline.predict((dir / "loop-a.dcm").string()); }, &message) == ErrorCode::kIo);
  CHECK_THAT(message, Catch::Contains("loop of symbolic links"));
}
