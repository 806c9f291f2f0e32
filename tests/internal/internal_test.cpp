// The internal test tier: what the public API cannot reach. Linked from the modules' object files, not
// from libmedinfer.so (whose internal symbols are hidden).
#include <medinfer/audit.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"
#include "core/block_cache.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"
#include "core/parallel.hpp"
#include "dicom/dicom_parse.hpp"
#include "risk/risk_internal.hpp"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

using namespace medinfer;

TEST_CASE("check_quality names the first failing field and says why", "[internal][risk]") {
  using namespace medinfer::risk;
  QualityGate g;
  g.modalities = {"CT", "MR"};
  g.min_rows = 128;
  const InputFacts ct{"CT", "", "", 1.0, 1.0, 512, 512};
  CHECK_FALSE(risk::detail::check_quality(g, ct).rule);
  InputFacts us = ct;
  us.modality = "US";
  us.rows = 64;  // fails too, but the modality is checked first
  const auto gate = risk::detail::check_quality(g, us);
  REQUIRE(gate.rule);
  CHECK(*gate.rule == Rule::kQualityGateModality);
  CHECK(gate.reason == "modality US is not one of CT, MR");
  us.modality = "MR";
  CHECK(risk::detail::check_quality(g, us).reason == "64 rows is outside [128, 0]");
}

TEST_CASE("mark_indeterminate keeps escalation and reports the first rule", "[internal][risk]") {
  using namespace medinfer::risk;
  Policy p;
  p.tiers = {{"low", 0.0}, {"high", 0.6}};
  p.escalation_threshold = 0.85;
  const Score marked = risk::detail::mark_indeterminate(assess(p, 0.95), Rule::kInputConstant, "blank image");
  CHECK(marked.tier == "indeterminate");
  CHECK(marked.escalate);
  CHECK(marked.reason == "blank image");
  CHECK(marked.rule == Rule::kInputConstant);
  const Score twice = risk::detail::mark_indeterminate(marked, Rule::kConformalSet, "x");
  CHECK(twice.rule == Rule::kInputConstant);
  CHECK(twice.reason == "blank image; x");
}

TEST_CASE("parallel_for runs every index exactly once and rethrows a worker's exception", "[internal][core]") {
  for (unsigned threads : {0u, 1u, 2u, 7u}) {
    std::vector<std::atomic<int>> seen(1000);
    medinfer::detail::parallel_for(seen.size(), threads, [&](std::size_t i) { seen[i].fetch_add(1); });
    for (const auto& s : seen) REQUIRE(s.load() == 1);
  }
  CHECK_THROWS_AS(medinfer::detail::parallel_for(100, 2,
                                       [](std::size_t i) {
                                         if (i == 57) throw std::runtime_error("worker failed");
                                       }),
                  std::runtime_error);
  medinfer::detail::parallel_for(0, 2, [](std::size_t) { FAIL("no index to run"); });
}

TEST_CASE("a recycled block-cache buffer never shows a previous image's pixels", "[internal][core]") {
  test::TempDir dir;
  test::DicomSpec spec;
  spec.rows = spec.columns = 256;  // large enough for the cache (not operator new)
  spec.values.assign(256 * 256, 0);
  for (std::size_t i = 0; i < spec.values.size(); ++i) spec.values[i] = static_cast<std::int32_t>(i % 251);
  test::write_dicom(dir / "ramp.dcm", spec);
  const dicom::ReadOptions raw{};
  const Image first = dicom::read_image((dir / "ramp.dcm").string(), raw);
  const std::vector<unsigned char> expected(static_cast<const unsigned char*>(first.data()),
                                            static_cast<const unsigned char*>(first.data()) + first.size_bytes());
  // Poison every block the cache may hand out next, then read again: the decoded pixels are the file's.
  for (int round = 0; round < 3; ++round) {
    std::vector<medinfer::detail::Block> poisoned;
    for (int i = 0; i < 8; ++i) {
      poisoned.emplace_back(first.size_bytes() + static_cast<std::size_t>(i) * 4096);
      std::memset(poisoned.back().data(), 0xAB, poisoned.back().size());
    }
    poisoned.clear();  // back to the cache, still holding 0xAB
    const Image again = dicom::read_image((dir / "ramp.dcm").string(), raw);
    REQUIRE(again.size_bytes() == expected.size());
    CHECK(std::memcmp(again.data(), expected.data(), expected.size()) == 0);
  }
}

TEST_CASE("guarded_parse lets only medinfer::Error out", "[internal][core]") {
  const medinfer::detail::Json j = medinfer::detail::Json::parse(R"({"n": "seven"})");
  std::string message;
  CHECK(test::error_code_of([&] { medinfer::detail::guarded_parse("thing.json", [&] { return j.at("n").get<int>(); }); },
                            &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::StartsWith("thing.json: "));
  CHECK(test::error_code_of([&] { medinfer::detail::guarded_parse("x", [&]() -> int { throw std::bad_alloc(); }); }) ==
        ErrorCode::kResourceLimit);
  CHECK(test::error_code_of([&] {
          medinfer::detail::guarded_parse("x", []() -> int { throw Error(ErrorCode::kNotFound, "kept"); });
        }) == ErrorCode::kNotFound);
}

TEST_CASE("the parse walk locates Pixel Data and refuses lengths beyond the bytes", "[internal][dicom]") {
  test::TempDir dir;
  test::DicomSpec spec;
  spec.rows = spec.columns = 16;
  test::write_dicom(dir / "native.dcm", spec);
  const std::string bytes = test::read_text(dir / "native.dcm");
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  medinfer::detail::Block inflated;
  const dicom::detail::Layout layout = dicom::detail::walk(data, bytes.size(), "native.dcm", "", 1 << 20, inflated);
  CHECK(layout.has_preamble);
  CHECK(layout.has_meta);
  CHECK(layout.transfer_syntax_uid == "1.2.840.10008.1.2.1");
  REQUIRE(layout.pixel.present);
  CHECK_FALSE(layout.pixel.encapsulated);
  CHECK(layout.pixel.value_length == 16u * 16u * 2u);
  CHECK(layout.pixel.end == layout.dataset_size);  // Pixel Data is the last element written
  CHECK(layout.complete);
  // The first header-only prefix stops at the native Pixel Data it cannot see the end of.
  const dicom::detail::Layout prefix =
      dicom::detail::walk(data, bytes.size() - 100, "native.dcm", "", 1 << 20, inflated, bytes.size());
  CHECK_FALSE(prefix.complete);
  // Cut inside the Pixel Data, the declared length runs past the bytes: kInvalidDicom naming the file.
  std::string message;
  CHECK(test::error_code_of([&] { dicom::detail::walk(data, bytes.size() - 10, "cut.dcm", "", 1 << 20, inflated); },
                            &message) == ErrorCode::kInvalidDicom);
  CHECK_THAT(message, Catch::Contains("cut.dcm"));

  test::DicomSpec jpeg = spec;
  jpeg.syntax = test::Syntax::kJpegLossless;
  test::write_dicom(dir / "jpeg.dcm", jpeg);
  const std::string jbytes = test::read_text(dir / "jpeg.dcm");
  const dicom::detail::Layout j = dicom::detail::walk(reinterpret_cast<const std::uint8_t*>(jbytes.data()),
                                                      jbytes.size(), "jpeg.dcm", "", 1 << 20, inflated);
  REQUIRE(j.pixel.present);
  CHECK(j.pixel.encapsulated);
  REQUIRE(j.pixel.fragments.size() >= 1);
  CHECK(j.pixel.fragments[0].offset + j.pixel.fragments[0].length <= j.dataset_size);
  const auto* syntax = dicom::detail::find_syntax(j.transfer_syntax_uid);
  REQUIRE(syntax != nullptr);
  CHECK(syntax->codec == dicom::detail::Codec::kJpeg);
}

namespace {

// What an attacker holding `key` can append: a line in the chain's own format, linked to `prev`.
std::string forged_line(const audit::Record& r, const std::string& log_id, std::uint64_t index, std::uint32_t epoch,
                        const std::string& prev, const std::string& key) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(audit::to_json_line(r));
  j["log_id"] = log_id;  // public in every line: the forger copies it
  j["chain_index"] = index;
  j["key_epoch"] = epoch;
  j["prev_mac"] = prev;
  std::string body = j.dump();
  const std::string mac = medinfer::detail::hmac_sha256_hex(key, body);
  body.pop_back();
  return body + ",\"mac\":\"" + mac + "\"}\n";
}

}  // namespace

TEST_CASE("keys only move forward: a retired key cannot add records after a rotation", "[internal][audit][security]") {
  test::TempDir dir;
  const std::string k0(32, 'a'), k1(32, 'b'), k2(32, 'c');
  audit::Keyring all;
  all.keys = {{0, k0}, {1, k1}, {2, k2}};
  const std::string path = (dir / "rot.jsonl").string();
  {
    audit::Keyring first;
    first.keys = {{0, k0}};
    auto sink = audit::ChainedFileSink::open(path, first);
    audit::Record r;
    r.event = audit::EventType::kInference;
    sink->write(r);
    sink->rotate_key(1, k1);
    sink->write(r);
    sink->rotate_key(2, k2);
    sink->write(r);
  }  // closed under epoch 2
  REQUIRE(audit::verify_log(path, all).ok);
  const std::string log = test::read_text(dir / "rot.jsonl");
  std::vector<std::string> lines;
  for (std::size_t s = 0, e; (e = log.find('\n', s)) != std::string::npos; s = e + 1) lines.push_back(log.substr(s, e - s));
  const auto last = nlohmann::json::parse(lines.back());
  const std::uint64_t next = last["chain_index"].get<std::uint64_t>() + 1;
  // Every older epoch, with only that epoch's key: a changed inference record and a closing checkpoint.
  for (const auto& [epoch, key] : std::vector<std::pair<std::uint32_t, std::string>>{{0, k0}, {1, k1}}) {
    INFO("epoch " << epoch);
    audit::Record changed;
    changed.event = audit::EventType::kInference;
    changed.finding.probability = 0.01;
    const std::string id = last["log_id"].get<std::string>();
    const std::string a = forged_line(changed, id, next, epoch, last["mac"].get<std::string>(), key);
    const std::string mac_a = nlohmann::json::parse(a)["mac"].get<std::string>();
    audit::Record close;
    close.event = audit::EventType::kCheckpoint;
    close.detail = "close; lines=x; head=y";
    const std::string b = forged_line(close, id, next + 1, epoch, mac_a, key);
    test::write_text(dir / "forged.jsonl", log + a + b);
    const audit::VerifyResult v = audit::verify_log((dir / "forged.jsonl").string(), all);
    CHECK_FALSE(v.ok);  // before: OK (closed)
    CHECK(v.first_bad_index == static_cast<std::int64_t>(lines.size()));
    CHECK_THAT(v.problem, Catch::Contains("keys only move forward"));
  }
}
