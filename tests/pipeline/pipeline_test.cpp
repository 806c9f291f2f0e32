#include <medinfer/medinfer.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

using namespace medinfer;
using test::error_code_of;
namespace fs = std::filesystem;

namespace {

struct Case {
  fs::path file;
  int label;
  std::string kind;
};

std::vector<Case> sample_cases() {
  const fs::path dir = test::sample_study_dir();
  std::ifstream in(dir / "truth.csv");
  REQUIRE(in);
  std::vector<Case> cases;
  std::string line;
  std::getline(in, line);  // header: file,label,kind,...
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string file, label, kind;
    std::getline(row, file, ',');
    std::getline(row, label, ',');
    std::getline(row, kind, ',');
    cases.push_back({dir / file, std::stoi(label), kind});
  }
  REQUIRE(cases.size() >= 4);
  return cases;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(test::read_text(path));
  std::string line;
  while (std::getline(lines, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Redirects fd 1 and 2 to a file while alive; captured() says what was written.
class CaptureStdio {
 public:
  explicit CaptureStdio(const fs::path& file) : file_(file) {
    std::fflush(nullptr);
    fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    saved_out_ = ::dup(1);
    saved_err_ = ::dup(2);
    ::dup2(fd_, 1);
    ::dup2(fd_, 2);
  }
  ~CaptureStdio() { restore(); }
  std::string captured() {
    restore();
    return test::read_text(file_);
  }

 private:
  void restore() {
    if (fd_ < 0) return;
    std::fflush(nullptr);
    ::dup2(saved_out_, 1);
    ::dup2(saved_err_, 2);
    ::close(saved_out_);
    ::close(saved_err_);
    ::close(fd_);
    fd_ = -1;
  }
  fs::path file_;
  int fd_ = -1, saved_out_ = -1, saved_err_ = -1;
};

}  // namespace

TEST_CASE("obvious cases of the sample study land in the expected tier", "[pipeline][e2e]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  int obvious = 0;
  std::vector<std::pair<double, double>> by_score;
  for (const Case& c : sample_cases()) {
    const Result r = pipeline.predict(c.file.string());
    INFO(c.file.filename().string() << " p=" << r.probability << " tier=" << r.tier);
    CHECK(r.probability >= 0.0);
    CHECK(r.probability <= 1.0);
    CHECK(r.model.name == "demo-ct-lesion");
    CHECK(r.model.sha256.size() == 64);
    CHECK(r.input_sha256.size() == 64);
    by_score.emplace_back(r.raw_score, r.probability);
    if (c.kind != "obvious") continue;
    ++obvious;
    if (c.label == 1) {
      CHECK(r.tier == "high");
      CHECK(r.escalate);
    } else {
      CHECK(r.tier == "low");
      CHECK_FALSE(r.escalate);
    }
    CHECK_FALSE(r.indeterminate);
  }
  CHECK(obvious == 4);
  std::sort(by_score.begin(), by_score.end());
  for (std::size_t i = 1; i < by_score.size(); ++i) CHECK(by_score[i - 1].second <= by_score[i].second);  // monotone
}

TEST_CASE("predict(Image) on in-memory HU pixels equals predict(path) on the same file", "[pipeline]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const fs::path file = sample_cases().front().file;
  const Result from_file = pipeline.predict(file.string());
  const Result from_image = pipeline.predict(dicom::read_image(file.string()));
  CHECK(from_image.probability == from_file.probability);
  CHECK(from_image.raw_score == from_file.raw_score);
  CHECK(from_image.input_sha256 == from_file.input_sha256);
}

TEST_CASE("predict on a borrowed image reads the caller's memory and leaves it as it was", "[pipeline]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const Image read = dicom::read_image(sample_cases().front().file.string());
  std::vector<float> memory(static_cast<const float*>(read.data()),
                            static_cast<const float*>(read.data()) + read.width() * read.height());
  const std::vector<float> before = memory;
  Image borrowed = Image::borrow(nullptr, memory.data(), read.pixel_type(), read.width(), read.height());
  borrowed.set_spacing(read.spacing());
  const Result a = pipeline.predict(read);
  const Result b = pipeline.predict(borrowed);
  CHECK(b.probability == a.probability);
  CHECK(b.input_sha256 == a.input_sha256);
  CHECK(memory == before);
  CHECK(borrowed.borrowed());
}

TEST_CASE("a constant image is indeterminate with a reason, not an error", "[pipeline]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  Image blank(PixelType::kFloat32, 256, 256);
  const Result r = pipeline.predict(blank);
  CHECK(r.indeterminate);
  CHECK(r.tier == "indeterminate");
  CHECK_THAT(r.reason, Catch::Contains("constant"));
}

TEST_CASE("every prediction is audited, failures included, with no patient identifier or path",
          "[pipeline][audit]") {
  test::TempDir dir;
  test::DicomSpec spec;  // carries PatientName DOE^JANE, PatientID PID-123456
  spec.rows = spec.columns = 64;
  test::write_dicom(dir / "DOE_JANE.dcm", spec);
  test::write_text(dir / "notdicom.txt", std::string(200, 'z'));

  PipelineOptions options;
  options.audit_sink = audit::FileSink::open((dir / "audit.jsonl").string());
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
  const auto cases = sample_cases();
  pipeline.predict(cases[0].file.string());
  pipeline.predict((dir / "DOE_JANE.dcm").string());
  CHECK(error_code_of([&] { pipeline.predict((dir / "notdicom.txt").string()); }) == ErrorCode::kInvalidDicom);
  CHECK(error_code_of([&] { pipeline.predict((dir / "missing.dcm").string()); }) == ErrorCode::kNotFound);

  const auto all = read_jsonl(dir / "audit.jsonl");
  REQUIRE(all.size() == 5);
  CHECK(all[0]["event"] == "model_opened");
  const std::vector<nlohmann::json> records(all.begin() + 1, all.end());
  for (const auto& r : records) CHECK(r["event"] == "inference");
  CHECK(records[0]["outcome"] == "ok");
  CHECK(records[0]["model"]["name"] == "demo-ct-lesion");
  CHECK(records[0]["model"]["version"] == "1.1.0");
  CHECK(records[0]["model"]["sha256"] == pipeline.model().sha256);
  CHECK(records[0]["input_sha256"].get<std::string>().size() == 64);
  CHECK(records[0]["preprocessing_sha256"].get<std::string>().size() == 64);
  CHECK(records[0]["latency_ms"].get<double>() > 0.0);
  CHECK(records[0]["sequence"].get<std::uint64_t>() < records[1]["sequence"].get<std::uint64_t>());
  CHECK_FALSE(records[0].contains("study_ref"));  // no pseudonym key: no references at all
  CHECK(records[2]["outcome"] == "error");
  CHECK(records[2]["error_code"] == "kInvalidDicom");
  CHECK(records[3]["error_code"] == "kNotFound");
  const std::string text = test::read_text(dir / "audit.jsonl");
  for (const char* forbidden : {"DOE", "JANE", "PID-123456", "SYNTHETIC", "MEDINFER-DEMO-0001", "notdicom",
                                "missing.dcm", "medinfer-test-"}) {
    INFO(forbidden);
    CHECK(text.find(forbidden) == std::string::npos);
  }
}

TEST_CASE("a failing audit sink fails the prediction with kAuditFailed", "[pipeline][audit]") {
  PipelineOptions full;
  full.audit_sink = audit::FileSink::open("/dev/full");  // every write fails with ENOSPC
  std::string msg;
  CHECK(error_code_of([&] { Pipeline::open(test::demo_model_dir().string(), full); }, &msg) ==
        ErrorCode::kAuditFailed);  // even model_opened is never unaudited
  bool fail = false;
  PipelineOptions options;
  options.audit_sink = audit::CallbackSink::create([&](const audit::Record&) {
    if (fail) throw std::runtime_error("audit store unreachable");
  });
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
  fail = true;
  CHECK(error_code_of([&] { pipeline.predict(sample_cases()[0].file.string()); }, &msg) == ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("not released") && Catch::Contains("audit store unreachable"));
}

TEST_CASE("one Pipeline shared by many threads gives the sequential results", "[pipeline][threads]") {
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
  const auto cases = sample_cases();
  std::vector<double> expected;
  for (const Case& c : cases) expected.push_back(pipeline.predict(c.file.string()).raw_score);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < cases.size(); ++i) {
          const std::size_t k = (i + t) % cases.size();
          if (pipeline.predict(cases[k].file.string()).raw_score != expected[k]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("the library writes nothing to stdout or stderr, on success or failure", "[pipeline]") {
  test::TempDir dir;
  test::write_text(dir / "bad.dcm", std::string(500, '\0') + "garbage");
  std::string out;
  {
    CaptureStdio capture(dir / "stdio.txt");
    try {
      const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string());
      pipeline.predict(sample_cases()[0].file.string());
      try {
        pipeline.predict((dir / "bad.dcm").string());
      } catch (const Error&) {
      }
      try {
        Pipeline::open((dir / "no-package").string());
      } catch (const Error&) {
      }
    } catch (...) {
      out = capture.captured();
      throw;
    }
    out = capture.captured();
  }
  CHECK(out.empty());
}

TEST_CASE("Pipeline::open refuses a modified package and names invalid manifest sections", "[pipeline][errors]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  auto m = nlohmann::json::parse(test::read_text(pkg / "manifest.json"));
  m["risk"]["tiers"][1]["min_probability"] = 0.9;
  test::write_text(pkg / "manifest.json", m.dump());
  std::string msg;
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("manifest.json: risk.tiers[2].min_probability"));
  m = nlohmann::json::parse(test::read_text(test::demo_model_dir() / "manifest.json"));
  m["calibration"] = {{"method", "temperature"}, {"temperature", 0}};
  test::write_text(pkg / "manifest.json", m.dump());
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("manifest.json: calibration.temperature"));
  m = nlohmann::json::parse(test::read_text(test::demo_model_dir() / "manifest.json"));
  m["preprocessing"][0]["step"] = "sharpen";
  test::write_text(pkg / "manifest.json", m.dump());
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("manifest.json: preprocessing[0].step"));
}

TEST_CASE("model events are audited: opened, refused, and host-reported changes", "[pipeline][audit]") {
  std::vector<audit::Record> records;
  std::mutex m;
  PipelineOptions options;
  options.audit_sink = audit::CallbackSink::create([&](const audit::Record& r) {
    std::lock_guard<std::mutex> lock(m);
    records.push_back(r);
  });
  options.actor = {"radiologist-17", "pacs-gateway"};
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  test::write_text(pkg / "model.pt", test::read_text(pkg / "model.pt") + "x");
  CHECK(error_code_of([&] { Pipeline::open(pkg.string(), options); }) == ErrorCode::kModelIntegrity);
  REQUIRE(records.size() == 1);
  CHECK(records[0].event == audit::EventType::kModelRefused);
  CHECK(records[0].error_code == ErrorCode::kModelIntegrity);
  CHECK(records[0].actor.user_id == "radiologist-17");

  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
  REQUIRE(records.size() == 2);
  CHECK(records[1].event == audit::EventType::kModelOpened);
  CHECK(records[1].model.sha256 == pipeline.model().sha256);
  CHECK(records[1].event_id.size() == 36);
  CHECK(records[1].timestamp.size() == std::string("2026-11-23T10:15:00.123456Z").size());
  CHECK(records[1].host.size() > 0);
  pipeline.record_event(audit::EventType::kOverride, "escalation threshold lowered to 0.7 by the safety officer");
  REQUIRE(records.size() == 3);
  CHECK(records[2].event == audit::EventType::kOverride);
  CHECK(records[2].sequence > records[1].sequence);
  CHECK(error_code_of([&] { pipeline.record_event(audit::EventType::kInference, "x"); }) ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("studies are referenced by keyed pseudonyms, or by UIDs only on opt-in", "[pipeline][audit]") {
  test::TempDir dir;
  test::DicomSpec spec;
  spec.rows = spec.columns = 64;
  spec.study_uid = "1.2.826.0.1.3680043.9.7777.1";
  spec.series_uid = "1.2.826.0.1.3680043.9.7777.2";
  spec.sop_uid = "1.2.826.0.1.3680043.9.7777.3";
  test::write_dicom(dir / "a.dcm", spec);
  spec.sop_uid = "1.2.826.0.1.3680043.9.7777.4";
  test::write_dicom(dir / "b.dcm", spec);
  std::vector<audit::Record> records;
  PipelineOptions options;
  options.audit_sink = audit::CallbackSink::create([&](const audit::Record& r) { records.push_back(r); });
  options.pseudonym_key = "a secret only the hospital holds";
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
  pipeline.predict((dir / "a.dcm").string());
  pipeline.predict((dir / "b.dcm").string());
  REQUIRE(records.size() == 3);
  CHECK(records[1].study_ref.size() == 64);
  CHECK(records[1].study_ref == records[2].study_ref);  // same study links
  CHECK(records[1].instance_ref != records[2].instance_ref);
  CHECK(records[1].study_ref.find("7777") == std::string::npos);
  options.include_identifiers = true;
  const Pipeline opted_in = Pipeline::open(test::demo_model_dir().string(), options);
  opted_in.predict((dir / "a.dcm").string());
  CHECK(records.back().study_ref == "1.2.826.0.1.3680043.9.7777.1");
}

TEST_CASE("no patient identifier reaches an audit record, export, log line or error message", "[pipeline][audit][phi]") {
  test::TempDir dir;
  const std::vector<std::string> phi = {"ZEBULON^QUIXOTE", "ZEBULON", "QUIXOTE", "PID-9H7G5F", "19230417",
                                        "ACC-55X1Y2", "1.2.826.0.1.3680043.9.4242.11", "1.2.826.0.1.3680043.9.4242.22",
                                        "1.2.826.0.1.3680043.9.4242.33",
                                        // A UID fragment, dotted: a bare "4242" also turns up by chance in
                                        // the random hex of event ids and MACs (about 1 run in 50).
                                        ".4242."};
  test::DicomSpec spec;
  spec.rows = spec.columns = 64;
  spec.patient_name = phi[0];
  spec.patient_id = phi[3];
  spec.patient_birth_date = phi[4];
  spec.accession_number = phi[5];
  spec.study_uid = phi[6];
  spec.series_uid = phi[7];
  spec.sop_uid = phi[8];
  const fs::path patient_dir = dir / "ZEBULON_QUIXOTE_PID-9H7G5F";
  fs::create_directories(patient_dir);
  test::write_dicom(patient_dir / "ACC-55X1Y2.dcm", spec);
  spec.pixel_data = false;
  test::write_dicom(patient_dir / "nopixels.dcm", spec);
  spec.pixel_data = true;
  spec.samples_per_pixel = 3;
  spec.photometric = "HSV";  // retired: unsupported
  spec.bits_allocated = spec.bits_stored = 8;
  spec.pixel_signed = false;
  test::write_dicom(patient_dir / "hsv.dcm", spec);

  std::string logs;
  std::mutex m;
  set_log_handler([&](LogLevel, std::string_view msg) {
    std::lock_guard<std::mutex> lock(m);
    logs += std::string(msg) + "\n";
  }, LogLevel::kDebug);
  audit::Keyring keys;
  keys.keys[0] = std::string(32, 'q');
  const fs::path log = dir / "audit.jsonl";
  {
    PipelineOptions options;
    options.audit_sink = audit::ChainedFileSink::open(log.string(), keys);
    options.pseudonym_key = audit::derive_pseudonym_key(keys);
    const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
    pipeline.predict((patient_dir / "ACC-55X1Y2.dcm").string());
    for (const char* bad : {"nopixels.dcm", "hsv.dcm", "missing.dcm"}) {
      std::string msg;
      error_code_of([&] { pipeline.predict((patient_dir / bad).string()); }, &msg);
      for (const auto& s : phi) {
        // The message names the path the host gave (its own choice of name), never a value from the file.
        const std::string without_path = [&] {
          std::string t = msg;
          const std::string p = (patient_dir / bad).string();
          for (auto pos = t.find(p); pos != std::string::npos; pos = t.find(p)) t.erase(pos, p.size());
          return t;
        }();
        INFO(bad << ": " << msg);
        CHECK(without_path.find(s) == std::string::npos);
      }
    }
  }
  set_log_handler(nullptr);
  CHECK(audit::verify_log(log.string(), keys).ok);
  std::string exported;
  std::istringstream lines(test::read_text(log));
  for (std::string line; std::getline(lines, line);) {
    const auto r = audit::from_json_line(line);
    exported += audit::to_atna_xml(r) + audit::to_fhir_audit_event(r);
  }
  const std::string audit_text = test::read_text(log);
  CHECK(audit_text.find("kUnsupported") != std::string::npos);  // the failures were recorded
  for (const auto& s : phi) {
    INFO(s);
    CHECK(audit_text.find(s) == std::string::npos);
    CHECK(exported.find(s) == std::string::npos);
    CHECK(logs.find(s) == std::string::npos);
  }
}

TEST_CASE("many threads predicting into one chained log leave a valid chain with every record",
          "[pipeline][audit][threads]") {
  test::TempDir dir;
  audit::Keyring keys;
  keys.keys[0] = std::string(32, 'z');
  const fs::path log = dir / "audit.jsonl";
  const auto cases = sample_cases();
  {
    PipelineOptions options;
    options.audit_sink = audit::ChainedFileSink::open(log.string(), keys);
    const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (const Case& c : cases) pipeline.predict(c.file.string());
      });
    }
    for (auto& th : threads) th.join();
  }
  const auto r = audit::verify_log(log.string(), keys);
  INFO(r.problem);
  CHECK(r.ok);
  int inferences = 0;
  for (const auto& j : read_jsonl(log)) inferences += j["event"] == "inference";
  CHECK(inferences == 4 * static_cast<int>(cases.size()));
}

TEST_CASE("a package's quality gate abstains on inputs outside it, naming the rule", "[pipeline][risk]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  auto m = nlohmann::json::parse(test::read_text(pkg / "manifest.json"));
  m["risk"]["quality_gate"] = {{"modalities", {"CT"}}, {"body_parts", {"CHEST"}}, {"pixel_spacing_mm", {0.5, 2.0}}};
  m["risk"]["operating_point"] = {{"name", "sensitivity_0.90"}, {"threshold", 0.3}};
  test::write_text(pkg / "manifest.json", m.dump());
  const Pipeline pipeline = Pipeline::open(pkg.string());
  const auto cases = sample_cases();
  const Result ok = pipeline.predict(cases[0].file.string());  // CT, CHEST, 1.5 mm
  CHECK(ok.rule == Rule::kTierCutpoints);
  CHECK(ok.operating_point == "sensitivity_0.90");
  CHECK(ok.operating_point_positive == (ok.probability >= 0.3));
  test::DicomSpec mr;
  mr.rows = mr.columns = 64;
  mr.pixel_spacing = "1\\1";
  test::write_dicom(dir / "ct_no_body_part.dcm", mr);  // BodyPartExamined absent: unknown, not gated
  CHECK(pipeline.predict((dir / "ct_no_body_part.dcm").string()).rule != Rule::kQualityGateModality);
  mr.modality = "MR";
  test::write_dicom(dir / "mr.dcm", mr);
  const Result on_mr = pipeline.predict((dir / "mr.dcm").string());
  CHECK(on_mr.tier == "indeterminate");
  CHECK(on_mr.rule == Rule::kQualityGateModality);
  CHECK_THAT(on_mr.reason, Catch::Contains("modality MR is not one of CT"));
  mr.modality = "CT";
  mr.body_part = "HEAD";
  test::write_dicom(dir / "head.dcm", mr);
  CHECK(pipeline.predict((dir / "head.dcm").string()).rule == Rule::kQualityGateBodyPart);
  mr.body_part.clear();
  mr.pixel_spacing = "3\\3";
  test::write_dicom(dir / "coarse.dcm", mr);
  const Result coarse = pipeline.predict((dir / "coarse.dcm").string());
  CHECK(coarse.tier == "indeterminate");
  CHECK(coarse.rule == Rule::kQualityGatePixelSpacing);
  CHECK_THAT(coarse.reason, Catch::Contains("3.00 mm"));
  const Result blank = pipeline.predict(Image(PixelType::kFloat32, 64, 64));  // default spacing 1 mm: in the gate
  CHECK(blank.rule == Rule::kInputConstant);
}

TEST_CASE("a window taken from the file's VOI gives the same result as the same fixed window", "[pipeline]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  auto m = nlohmann::json::parse(test::read_text(pkg / "manifest.json"));
  REQUIRE(m["preprocessing"][0]["step"] == "window");
  // The file's LINEAR VOI function is DICOM's (PS3.3 C.11.2.1.2.1): the same as a fixed dicom_linear window.
  auto fixed_manifest = m;
  fixed_manifest["preprocessing"][0] = {{"step", "window"}, {"center", 40}, {"width", 400}, {"function", "dicom_linear"}};
  m["preprocessing"][0] = {{"step", "window"}, {"from_file", true}, {"center", 0}, {"width", 4000}};
  test::write_text(pkg / "manifest.json", m.dump());
  const fs::path pkg_fixed = test::copy_demo_package(dir / "fixed");
  test::write_text(pkg_fixed / "manifest.json", fixed_manifest.dump());
  const Pipeline from_file = Pipeline::open(pkg.string());
  const Pipeline fixed = Pipeline::open(pkg_fixed.string());
  const fs::path file = sample_cases()[0].file;  // WindowCenter 40, WindowWidth 400: the demo's fixed window
  REQUIRE(dicom::read_instance(file.string()).header.has_window);
  CHECK(from_file.predict(file.string()).raw_score == fixed.predict(file.string()).raw_score);
  // In memory there is no header: the step's own (here very different) window applies.
  CHECK(from_file.predict(dicom::read_image(file.string())).raw_score != fixed.predict(file.string()).raw_score);
}

TEST_CASE("the dynamic batcher merges requests from 8 threads and never mixes them up", "[pipeline][batcher]") {
  const auto cases = sample_cases();
  const Pipeline sequential = Pipeline::open(test::demo_model_dir().string());
  std::vector<double> expected;
  for (const auto& c : cases) expected.push_back(sequential.predict(c.file.string()).raw_score);
  PipelineOptions options;
  options.batching.max_batch_size = 8;
  options.batching.max_delay_us = 5000;
  const Pipeline batched = Pipeline::open(test::demo_model_dir().string(), options);
  constexpr int kThreads = 8, kEach = 15;
  std::vector<std::vector<std::pair<std::size_t, double>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::size_t k = static_cast<std::size_t>(t * 7 + i * 3) % cases.size();
        got[static_cast<std::size_t>(t)].emplace_back(k, batched.predict(cases[k].file.string()).raw_score);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::size_t n = 0;
  for (const auto& per_thread : got) {
    for (const auto& [k, score] : per_thread) {
      INFO("case " << k);
      CHECK(score == Approx(expected[k]).margin(1e-5));  // batched convolution may round differently
      ++n;
    }
  }
  CHECK(n == static_cast<std::size_t>(kThreads * kEach));
}

TEST_CASE("Result::batch_size says how many images rode in the model run", "[pipeline][batcher]") {
  const std::string file = sample_cases().front().file.string();
  const Pipeline alone = Pipeline::open(test::demo_model_dir().string());
  CHECK(alone.predict(file).batch_size == 1);
  // A batch of 2 starts only when full (the delay is far longer than two threads take to arrive).
  PipelineOptions options;
  options.batching.max_batch_size = 2;
  options.batching.max_delay_us = 1000000;
  const Pipeline batched = Pipeline::open(test::demo_model_dir().string(), options);
  int sizes[2] = {0, 0};
  std::thread a([&] { sizes[0] = batched.predict(file).batch_size; });
  std::thread b([&] { sizes[1] = batched.predict(file).batch_size; });
  a.join();
  b.join();
  CHECK(sizes[0] == 2);
  CHECK(sizes[1] == 2);
  // predict_many: each result names its own run's size, never above ManyOptions::batch_size.
  ManyOptions many;
  many.batch_size = 4;
  many.workers = 1;
  int total = 0;
  for (const Outcome& o : alone.predict_many(std::vector<Input>(8, Input::file(file)), many)) {
    REQUIRE(o.ok());
    CHECK(o.result->batch_size >= 1);
    CHECK(o.result->batch_size <= 4);
    total += o.result->batch_size;
  }
  CHECK(total > 8);  // with one worker and 8 inputs, at least one batch held several
}

TEST_CASE("the dynamic batcher refuses with kOverloaded when its queue is full", "[pipeline][batcher][errors]") {
  PipelineOptions options;
  options.batching.max_batch_size = 64;    // never fills: each batch waits the whole delay
  options.batching.max_delay_us = 400000;  // 0.4 s
  options.batching.max_queue = 1;
  const Pipeline p = Pipeline::open(test::demo_model_dir().string(), options);
  const std::string file = sample_cases().front().file.string();
  std::thread first([&] { CHECK(std::isfinite(p.predict(file).raw_score)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the first request is waiting in the queue
  std::string msg;
  CHECK(error_code_of([&] { p.predict(file); }, &msg) == ErrorCode::kOverloaded);
  CHECK_THAT(msg, Catch::Contains("max_queue"));
  first.join();
  CHECK(std::isfinite(p.predict(file).raw_score));  // the queue drained: accepted again
  PipelineOptions bad;
  bad.batching.max_batch_size = 1000;
  CHECK(error_code_of([&] { Pipeline::open(test::demo_model_dir().string(), bad); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("max_batch_size"));
}
