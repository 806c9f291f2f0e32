#include <medinfer/medinfer.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
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
  for (const Case& c : sample_cases()) {
    const Result r = pipeline.predict(c.file.string());
    INFO(c.file.filename().string() << " p=" << r.probability << " tier=" << r.tier);
    CHECK(r.probability >= 0.0);
    CHECK(r.probability <= 1.0);
    CHECK(r.model.name == "demo-ct-lesion");
    CHECK(r.model.sha256.size() == 64);
    CHECK(r.input_sha256.size() == 64);
    CHECK((r.probability > 0.5) == (r.raw_score > 0.0));  // calibration keeps the decision boundary
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

  const auto records = read_jsonl(dir / "audit.jsonl");
  REQUIRE(records.size() == 4);
  CHECK(records[0]["outcome"] == "ok");
  CHECK(records[0]["model"]["name"] == "demo-ct-lesion");
  CHECK(records[0]["model"]["version"] == "1.0.0");
  CHECK(records[0]["model"]["sha256"] == pipeline.model().sha256);
  CHECK(records[0]["input_sha256"].get<std::string>().size() == 64);
  CHECK(records[0]["latency_ms"].get<double>() > 0.0);
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
  PipelineOptions options;
  options.audit_sink = audit::FileSink::open("/dev/full");
  const Pipeline pipeline = Pipeline::open(test::demo_model_dir().string(), options);
  std::string msg;
  CHECK(error_code_of([&] { pipeline.predict(sample_cases()[0].file.string()); }, &msg) == ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("not released"));
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
  m["calibration"]["temperature"] = 0;
  test::write_text(pkg / "manifest.json", m.dump());
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("manifest.json: calibration.temperature"));
  m = nlohmann::json::parse(test::read_text(test::demo_model_dir() / "manifest.json"));
  m["preprocessing"][0]["step"] = "sharpen";
  test::write_text(pkg / "manifest.json", m.dump());
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("manifest.json: preprocessing[0].step"));
}
