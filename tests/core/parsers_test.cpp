// Every public parser of JSON text turns malformed input into medinfer::Error: each value of a valid
// document (leaves and containers) is replaced, one at a time, by a value of every other JSON type and
// by out-of-range numbers; the parser must either accept the document or throw medinfer::Error. A
// dependency's exception (nlohmann's type_error, std::out_of_range, ...) escaping fails the test.
#include <medinfer/audit.hpp>
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/package.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <functional>
#include <string>
#include <vector>

using namespace medinfer;
using nlohmann::json;

namespace {

void pointers(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) pointers(*it, at / it.key(), out);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) pointers(j[i], at / i, out);
  }
}

// How many mutated documents were refused (medinfer::Error) and accepted; fails on anything else.
std::pair<int, int> mutate_all(const json& base, const std::function<void(const std::string&)>& parse) {
  const std::vector<json> replacements = {"x",  "",   5,         -1,         2.5,  nullptr, json::array(),
                                          json::object(), true, 1e300, -1e300, json(18446744073709551615ull),
                                          json(-9223372036854775807ll - 1), json::array({1, "a"})};
  std::vector<json::json_pointer> all;
  pointers(base, json::json_pointer(), all);
  int refused = 0, accepted = 0;
  for (const auto& at : all) {
    for (const json& value : replacements) {
      json doc = base;
      doc[at] = value;
      const std::string text = doc.dump();
      try {
        parse(text);
        ++accepted;
      } catch (const Error&) {
        ++refused;
      } catch (const std::exception& e) {
        FAIL_CHECK("a non-medinfer exception escaped for " << at.to_string() << " = " << value.dump() << ": " << e.what());
      }
    }
  }
  // Truncations and non-JSON text too.
  const std::string text = base.dump();
  for (std::size_t n = 0; n < text.size(); n += 7) {
    try {
      parse(text.substr(0, n));
      ++accepted;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL_CHECK("a non-medinfer exception escaped for a truncation at " << n << ": " << e.what());
    }
  }
  return {refused, accepted};
}

}  // namespace

TEST_CASE("risk::parse_policy lets only medinfer::Error out of malformed JSON", "[core][parsers]") {
  const json policy = json::parse(R"({"tiers": [{"name": "low", "min_probability": 0}, {"name": "high", "min_probability": 0.5}],
      "escalation_threshold": 0.9, "min_confidence": 0.6,
      "quality_gate": {"modalities": ["CT"], "body_parts": ["CHEST"], "photometric": ["MONOCHROME2"],
                       "pixel_spacing_mm": [0.3, 2], "rows": [64, 4096], "columns": [64, 4096]},
      "operating_point": {"name": "sensitivity_0.90", "threshold": 0.2, "guarantee": "g"},
      "conformal": {"alpha": 0.1, "qhat": 0.8}})");
  const auto [refused, accepted] = mutate_all(policy, [](const std::string& t) { risk::parse_policy(t); });
  CHECK(refused > 100);
  CHECK(accepted > 0);
}

TEST_CASE("calibration::parse_calibration lets only medinfer::Error out of malformed JSON", "[core][parsers]") {
  const json all = json::array({json::parse(R"({"method": "temperature", "temperature": 1.5})"),
                                json::parse(R"({"method": "platt", "a": -1, "b": 0.2})"),
                                json::parse(R"({"method": "isotonic", "x": [-1, 0, 1], "y": [0.1, 0.5, 0.9]})"),
                                json::parse(R"({"method": "histogram", "edges": [0, 0.5, 1], "values": [0.2, 0.8]})"),
                                json::parse(R"({"method": "beta", "a": 1, "b": 1, "c": 0})")});
  const auto [refused, accepted] =
      mutate_all(all, [](const std::string& t) { calibration::parse_calibration(t, 5); });
  CHECK(refused > 100);
  const auto one = mutate_all(all[2], [](const std::string& t) {
    calibration::parse_calibration(t, Task::kMultiClass, 3);
  });
  CHECK(one.first > 10);
}

TEST_CASE("preprocess::parse_spec lets only medinfer::Error out of malformed JSON", "[core][parsers]") {
  const json manifest = json::parse(test::read_text(test::demo_model_dir() / "manifest.json"));
  const auto [refused, accepted] =
      mutate_all(manifest["preprocessing"], [](const std::string& t) { preprocess::parse_spec(t); });
  CHECK(refused > 50);
}

TEST_CASE("audit::from_json_line lets only medinfer::Error out of malformed JSON", "[core][parsers]") {
  audit::Record r;
  r.timestamp = "2026-12-01T10:00:00.000000Z";
  r.event_id = "e";
  r.sequence = 7;
  r.model = {"m", "1.0.0", std::string(64, 'a')};
  r.outcome = audit::Outcome::kIndeterminate;
  r.finding.tier = "indeterminate";
  r.finding.label = "a";
  r.finding.reason = "why";
  r.finding.rule = Rule::kQualityGateRows;
  r.arm = Arm::kCandidate;
  Finding f;
  f.label = "a";
  f.tier = "low";
  r.findings.push_back(f);
  const json line = json::parse(audit::to_json_line(r));
  const auto [refused, accepted] = mutate_all(line, [](const std::string& t) { audit::from_json_line(t); });
  CHECK(refused > 50);
  // The reviewer's recipe: a sequence that is not a number.
  json seven = line;
  seven["sequence"] = "seven";
  std::string message;
  CHECK(test::error_code_of([&] { audit::from_json_line(seven.dump()); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("sequence"));
}

TEST_CASE("the manifest (ModelPackage::open, verify_package) lets only medinfer::Error out of malformed JSON",
          "[core][parsers]") {
  test::TempDir dir;
  const auto pkg = test::copy_demo_package(dir.path());
  const json manifest = json::parse(test::read_text(pkg / "manifest.json"));
  const auto [refused, accepted] = mutate_all(manifest, [&](const std::string& t) {
    test::write_text(pkg / "manifest.json", t);
    verify_package(pkg.string());
  });
  CHECK(refused > 500);
}

TEST_CASE("a key named twice in one JSON object is refused naming its path, at any depth", "[core][parsers][security]") {
  std::string message;
  // Depth 1: a second escalation_threshold would silently flip escalation ("last one wins").
  CHECK(test::error_code_of([] {
          risk::parse_policy(R"({"tiers": [{"name": "low", "min_probability": 0}], "escalation_threshold": 0.9,
                                 "min_confidence": 0.5, "escalation_threshold": 0.1})");
        }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("risk: escalation_threshold: duplicate key"));
  // Depth 2, inside an object inside an array.
  CHECK(test::error_code_of([] {
          preprocess::parse_spec(R"([{"step": "clip", "min": 0, "max": 1}, {"step": "window", "center": 1, "width": 2, "center": 3}])");
        }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("[1].center: duplicate key"));
  CHECK(test::error_code_of([] {
          audit::from_json_line(R"({"event": "inference", "outcome": "ok", "outcome": "error"})");
        }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("outcome: duplicate key"));
  // The same key in different objects is fine.
  CHECK_NOTHROW(risk::parse_policy(R"({"tiers": [{"name": "low", "min_probability": 0}, {"name": "high", "min_probability": 0.5}],
                                       "escalation_threshold": 0.9, "min_confidence": 0.5})"));

  // The manifest: a duplicated files entry (first hash wrong, second right) and depth 3 in the risk gate.
  test::TempDir dir;
  const auto pkg = test::copy_demo_package(dir.path());
  const std::string text = test::read_text(pkg / "manifest.json");
  const auto files_at = text.find("\"files\"");
  REQUIRE(files_at != std::string::npos);
  const auto brace = text.find('{', files_at);
  std::string forged = text;
  forged.insert(brace + 1, "\n    \"model.pt\": \"" + std::string(64, '0') + "\",");
  test::write_text(pkg / "manifest.json", forged);
  CHECK(test::error_code_of([&] { verify_package(pkg.string()); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("files.model.pt: duplicate key"));
  const auto gate = text.find("\"quality_gate\"");
  REQUIRE(gate != std::string::npos);
  std::string deep = text;
  deep.insert(text.find('{', gate) + 1, "\"modalities\": [\"MR\"], \"modalities\": [\"CT\"], ");
  test::write_text(pkg / "manifest.json", deep);
  CHECK(test::error_code_of([&] { verify_package(pkg.string()); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("risk.quality_gate.modalities: duplicate key"));
}
