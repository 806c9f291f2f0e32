#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <sstream>
#include <thread>

using namespace medinfer;
using namespace medinfer::audit;
using test::error_code_of;

namespace {

Record sample_record(int i) {
  Record r;
  r.timestamp = "2026-11-23T10:15:00.123Z";
  r.model = {"demo", "1.0.0", std::string(64, 'a')};
  r.input_sha256 = std::string(64, 'b');
  r.outcome = "ok";
  r.raw_score = 1.5;
  r.probability = 0.8 + i * 1e-6;
  r.tier = "high";
  r.escalate = false;
  r.latency_ms = 2.5;
  return r;
}

}  // namespace

TEST_CASE("to_json_line writes one JSON object with the record's fields", "[audit]") {
  const auto j = nlohmann::json::parse(to_json_line(sample_record(0)));
  CHECK(j["event"] == "prediction");
  CHECK(j["model"]["name"] == "demo");
  CHECK(j["model"]["sha256"] == std::string(64, 'a'));
  CHECK(j["outcome"] == "ok");
  CHECK(j["probability"] == Approx(0.8));
  CHECK(j["tier"] == "high");
  CHECK(j["latency_ms"] == 2.5);
  CHECK_FALSE(j.contains("error_code"));
  Record e = sample_record(0);
  e.outcome = "error";
  e.error_code = "kInvalidDicom";
  e.error_message = "<input>: not DICOM \xff";  // invalid UTF-8 is replaced, never thrown on
  const auto je = nlohmann::json::parse(to_json_line(e));
  CHECK(je["error_code"] == "kInvalidDicom");
  CHECK_FALSE(je.contains("probability"));
  CHECK(to_json_line(e).find('\n') == std::string::npos);
}

TEST_CASE("FileSink appends whole lines from many threads without interleaving", "[audit]") {
  test::TempDir dir;
  const auto path = dir / "audit.jsonl";
  {
    auto sink = FileSink::open(path.string());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) sink->write(sample_record(t * 1000 + i));
      });
    }
    for (auto& th : threads) th.join();
  }
  {
    auto again = FileSink::open(path.string());  // appends, never truncates
    again->write(sample_record(99999));
  }
  std::istringstream lines(test::read_text(path));
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK_NOTHROW(nlohmann::json::parse(line));
    ++count;
  }
  CHECK(count == 8 * 200 + 1);
}

TEST_CASE("FileSink reports an unopenable path as kIo and a failed write as kAuditFailed", "[audit][errors]") {
  std::string msg;
  CHECK(error_code_of([] { FileSink::open("/nonexistent-dir/audit.jsonl"); }, &msg) == ErrorCode::kIo);
  CHECK_THAT(msg, Catch::Contains("/nonexistent-dir/audit.jsonl"));
  auto full = FileSink::open("/dev/full");  // every write fails with ENOSPC
  CHECK(error_code_of([&] { full->write(sample_record(0)); }, &msg) == ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("/dev/full"));
}
