#include <medinfer/error.hpp>
#include <medinfer/risk.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <cmath>
#include <tuple>

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
  CHECK(s.rule == Rule::kConfidenceThreshold);
  CHECK(assess(p, 0.3).rule == Rule::kTierCutpoints);
}

TEST_CASE("assess with input facts applies the quality gate, then a constant input, then the model's verdict", "[risk]") {
  Policy p = demo_policy();
  InputFacts blank;
  blank.constant = true;
  const Score marked = assess(p, 0.95, blank);
  CHECK(marked.tier == "indeterminate");
  CHECK(marked.escalate);  // a high probability on a doubtful input still reaches a person
  CHECK(marked.reason == "the model input is constant after preprocessing (no contrast)");
  CHECK(marked.rule == Rule::kInputConstant);
  CHECK(assess(p, 0.95, InputFacts{}).rule == Rule::kTierCutpoints);  // nothing to object to: the model's verdict
  p.quality_gate.modalities = {"CT"};
  InputFacts mr = blank;
  mr.modality = "MR";
  const Score gated = assess(p, 0.55, mr);  // gate, constant and confidence all apply: the gate decides
  CHECK(gated.rule == Rule::kQualityGateModality);
  CHECK_THAT(gated.reason, Catch::StartsWith("modality MR is not one of CT; the model input is constant") &&
                               Catch::Contains("confidence 0.55"));
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

TEST_CASE("tier, escalation and abstention at and around every boundary", "[risk]") {
  Policy p = demo_policy();
  for (const auto& [prob, tier, escalate] : std::vector<std::tuple<double, std::string, bool>>{
           {0.0, "low", false},
           {std::nextafter(0.2, 0.0), "low", false},
           {0.2, "intermediate", false},
           {std::nextafter(0.4, 0.0), "intermediate", false},  // confidence just above 0.6
           {0.41, "indeterminate", false},
           {0.59, "indeterminate", false},
           {std::nextafter(0.6, 0.0), "indeterminate", false},
           {0.6, "high", false},
           {std::nextafter(0.85, 0.0), "high", false},
           {0.85, "high", true},
           {1.0, "high", true}}) {
    INFO(prob);
    const Score s = assess(p, prob);
    CHECK(s.tier == tier);
    CHECK(s.escalate == escalate);
  }
}

TEST_CASE("conformal sets abstain when both classes remain; operating points flag", "[risk]") {
  Policy p = demo_policy();
  p.min_confidence = 0.5;
  p.conformal = ConformalRule{0.1, 0.7};
  p.operating_point = OperatingPointRule{"sensitivity_0.90", 0.15, "LTT"};
  CHECK(assess(p, 0.9).prediction_set == std::vector<std::string>{"positive"});
  CHECK(assess(p, 0.1).prediction_set == std::vector<std::string>{"negative"});
  const Score both = assess(p, 0.5);  // 1 - 0.5 <= 0.7 and 0.5 <= 0.7
  CHECK(both.prediction_set.size() == 2);
  CHECK(both.tier == "indeterminate");
  CHECK(both.rule == Rule::kConformalSet);
  CHECK(assess(p, 0.31).rule == Rule::kConformalSet);  // 1 - 0.31 = 0.69 <= 0.7 and 0.31 <= 0.7: both
  CHECK(assess(p, 0.29).prediction_set == std::vector<std::string>{"negative"});
  CHECK(assess(p, 0.16).operating_point_positive);
  CHECK_FALSE(assess(p, 0.14).operating_point_positive);
  CHECK(assess(p, 0.15).operating_point_positive);
}

TEST_CASE("the quality gate names the failing field", "[risk]") {
  QualityGate g;
  g.modalities = {"CT"};
  g.body_parts = {"CHEST"};
  g.photometric = {"MONOCHROME2"};
  g.min_pixel_spacing_mm = 0.5;
  g.max_pixel_spacing_mm = 2.0;
  g.min_rows = g.min_columns = 128;
  g.max_rows = g.max_columns = 1024;
  Policy policy = demo_policy();
  policy.quality_gate = g;
  const InputFacts ok{"CT", "CHEST", "MONOCHROME2", 1.0, 1.0, 512, 512};
  CHECK(assess(policy, 0.9, ok).rule == Rule::kTierCutpoints);
  // The rule's name that decided, or "" when the gate passed (the model's own verdict then decides).
  auto with = [&](auto edit) {
    InputFacts f = ok;
    edit(f);
    const Score s = assess(policy, 0.9, f);
    return s.rule == Rule::kTierCutpoints ? std::string() : std::string(to_string(s.rule));
  };
  CHECK(with([](InputFacts& f) { f.modality = "MR"; }) == "quality_gate.modality");
  CHECK(with([](InputFacts& f) { f.body_part = "HEAD"; }) == "quality_gate.body_part");
  CHECK(with([](InputFacts& f) { f.photometric = "MONOCHROME1"; }) == "quality_gate.photometric");
  CHECK(with([](InputFacts& f) { f.spacing_y_mm = 2.5; }) == "quality_gate.pixel_spacing_mm");
  CHECK(with([](InputFacts& f) { f.spacing_x_mm = 0.49; }) == "quality_gate.pixel_spacing_mm");
  CHECK(with([](InputFacts& f) { f.spacing_x_mm = 0.5; }).empty());
  CHECK(with([](InputFacts& f) { f.rows = 127; }) == "quality_gate.rows");
  CHECK(with([](InputFacts& f) { f.columns = 1025; }) == "quality_gate.columns");
  CHECK(with([](InputFacts& f) { f.modality = ""; }).empty());  // unknown (in-memory image): not gated
}

TEST_CASE("parse_policy reads gates, operating points and conformal rules, and refuses bad ones", "[risk]") {
  const Policy p = parse_policy(R"({"tiers":[{"name":"low","min_probability":0}],"escalation_threshold":0.9,
      "min_confidence":0.5,"quality_gate":{"modalities":["CT"],"pixel_spacing_mm":[0.3,2],"rows":[64,4096]},
      "operating_point":{"name":"s90","threshold":0.2,"guarantee":"LTT"},"conformal":{"alpha":0.1,"qhat":0.8}})");
  CHECK(p.quality_gate.modalities == std::vector<std::string>{"CT"});
  CHECK(p.quality_gate.max_rows == 4096);
  CHECK(p.operating_point->threshold == 0.2);
  CHECK(p.conformal->qhat == 0.8);
  const std::string base = R"({"tiers":[{"name":"low","min_probability":0}],"escalation_threshold":0.9,"min_confidence":0.5,)";
  for (const auto& [tail, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"("quality_gate":{"modality":["CT"]}})", "quality_gate.modality: unknown field"},
           {R"("quality_gate":{"rows":[64]}})", "quality_gate.rows: expected [min, max]"},
           {R"("quality_gate":{"pixel_spacing_mm":[2,1]}})", "quality_gate.pixel_spacing_mm"},
           {R"("conformal":{"alpha":1.5,"qhat":0.5}})", "conformal.alpha"},
           {R"("operating_point":{"name":"x","threshold":2}})", "operating_point.threshold"},
           {R"("escalate_at":0.5})", "escalate_at: unknown field"}}) {
    std::string msg;
    INFO(tail);
    CHECK(error_code_of([&] { parse_policy(base + tail); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains(expected));
  }
}
