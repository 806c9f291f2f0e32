#include <medinfer/error.hpp>
#include <medinfer/risk.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

using namespace medinfer;
using namespace medinfer::risk;
using test::error_code_of;

namespace {

Policy demo_policy() {
  Policy p;
  p.tiers = {{"low", 0.0}, {"intermediate", 0.2}, {"high", 0.6}};
  p.escalation_threshold = 0.85;
  p.min_confidence = 0.6;
  return p;
}

}  // namespace

TEST_CASE("assess picks the tier whose range holds the probability (lower bound inclusive)", "[risk]") {
  const Policy p = demo_policy();
  CHECK(assess(p, 0.0).tier == "low");
  CHECK(assess(p, 0.1999).tier == "low");
  CHECK(assess(p, 0.2).tier == "intermediate");
  CHECK(assess(p, 0.3).tier == "intermediate");
  CHECK(assess(p, 0.6).tier == "high");
  CHECK(assess(p, 1.0).tier == "high");
}

TEST_CASE("assess escalates at and above the escalation threshold", "[risk]") {
  const Policy p = demo_policy();
  CHECK_FALSE(assess(p, 0.8499).escalate);
  CHECK(assess(p, 0.85).escalate);
  CHECK(assess(p, 0.99).escalate);
}

TEST_CASE("assess is indeterminate, with a reason, below the confidence threshold", "[risk]") {
  const Policy p = demo_policy();
  const Score s = assess(p, 0.45);
  CHECK(s.indeterminate);
  CHECK(s.tier == "indeterminate");
  CHECK(s.confidence == Approx(0.55));
  CHECK_THAT(s.reason, Catch::Contains("confidence 0.55") && Catch::Contains("0.60"));
  CHECK_FALSE(assess(p, 0.6).indeterminate);
  CHECK_FALSE(assess(p, 0.4).indeterminate);
  const Score marked = mark_indeterminate(assess(p, 0.95), "blank image");
  CHECK(marked.tier == "indeterminate");
  CHECK(marked.escalate);
  CHECK(marked.reason == "blank image");
}

TEST_CASE("assess rejects probabilities outside [0, 1]", "[risk][errors]") {
  CHECK(error_code_of([] { assess(demo_policy(), 1.01); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { assess(demo_policy(), std::nan("")); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("Policy::validate names the first invalid field", "[risk][errors]") {
  const std::vector<std::pair<std::function<void(Policy&)>, std::string>> cases = {
      {[](Policy& p) { p.tiers.clear(); }, "risk.tiers: at least one"},
      {[](Policy& p) { p.tiers[0].min_probability = 0.1; }, "risk.tiers[0].min_probability: the first tier"},
      {[](Policy& p) { p.tiers[2].min_probability = 0.2; }, "risk.tiers[2].min_probability: tiers must be in strictly"},
      {[](Policy& p) { p.tiers[1].name = "low"; }, "risk.tiers[1].name: 'low' appears twice"},
      {[](Policy& p) { p.tiers[1].name = ""; }, "risk.tiers[1].name: must not be empty"},
      {[](Policy& p) { p.tiers[2].name = "indeterminate"; }, "reserved"},
      {[](Policy& p) { p.tiers[2].min_probability = 1.5; }, "risk.tiers[2].min_probability: must be in [0, 1]"},
      {[](Policy& p) { p.escalation_threshold = -0.1; }, "risk.escalation_threshold"},
      {[](Policy& p) { p.min_confidence = 0.4; }, "risk.min_confidence"},
  };
  for (const auto& [mutate, expected] : cases) {
    Policy p = demo_policy();
    mutate(p);
    std::string msg;
    CHECK(error_code_of([&] { p.validate(); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains(expected));
  }
  CHECK_NOTHROW(demo_policy().validate());
}

TEST_CASE("parse_policy reads and validates the manifest's risk object", "[risk]") {
  const Policy p = parse_policy(R"({"tiers":[{"name":"low","min_probability":0},{"name":"high","min_probability":0.5}],
                                    "escalation_threshold":0.9,"min_confidence":0.55})");
  CHECK(p.tiers.size() == 2);
  CHECK(p.escalation_threshold == 0.9);
  std::string msg;
  CHECK(error_code_of([&] { parse_policy(R"({"tiers":[{"name":"low"}],"escalation_threshold":1,"min_confidence":0.5})"); },
                      &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("risk.tiers[0].min_probability: missing"));
  CHECK(error_code_of([&] { parse_policy(R"({"tiers":[{"name":"low","min_probability":0.2}],"escalation_threshold":1,"min_confidence":0.5})"); },
                      &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("risk.tiers[0].min_probability"));
}
