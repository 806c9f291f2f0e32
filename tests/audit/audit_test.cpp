#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../support/test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <thread>

using namespace medinfer;
using namespace medinfer::audit;
using test::error_code_of;
namespace fs = std::filesystem;

namespace {

Record sample_record(int i) {
  Record r;
  r.timestamp = "2026-11-23T10:15:00.123456Z";
  r.event_id = "0b8f0a52-5d2c-4b65-9a43-0d5f6c1e9a10";
  r.sequence = static_cast<std::uint64_t>(i) + 1;
  r.actor = {"dr.who", "pacs-7"};
  r.host = "reading-room-3";
  r.model = {"demo", "1.0.0", std::string(64, 'a')};
  r.preprocessing_sha256 = std::string(64, 'c');
  r.input_sha256 = std::string(64, 'b');
  r.study_ref = std::string(64, 'd');
  r.outcome = Outcome::kOk;
  r.finding.raw_score = 1.5;
  r.finding.probability = 0.8 + i * 1e-6;
  r.finding.tier = "high";
  r.latency_ms = 2.5;
  return r;
}

Keyring ring(std::uint32_t epoch = 0, char fill = 'k') {
  Keyring k;
  k.keys[epoch] = std::string(32, fill);
  return k;
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::vector<std::string> out;
  std::istringstream in(test::read_text(path));
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  test::write_text(path, text);
}

// A closed chain of `n` records (plus its closing checkpoint) at dir/chain.jsonl.
fs::path make_chain(const test::TempDir& dir, int n, ChainOptions options = {}) {
  const fs::path path = dir / "chain.jsonl";
  auto sink = ChainedFileSink::open(path.string(), ring(), options);
  for (int i = 0; i < n; ++i) sink->write(sample_record(i));
  sink->close();
  return path;
}

// A socket bound to 127.0.0.1 on a free port; returns {fd, port}.
std::pair<int, std::uint16_t> loopback_socket(int type) {
  const int s = ::socket(AF_INET, type, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  return {s, ntohs(addr.sin_port)};
}

}  // namespace

TEST_CASE("to_json_line writes one JSON object that from_json_line reads back", "[audit]") {
  const Record r = sample_record(0);
  const auto j = nlohmann::json::parse(to_json_line(r));
  CHECK(j["event"] == "inference");
  CHECK(j["event_id"] == r.event_id);
  CHECK(j["sequence"] == 1);
  CHECK(j["actor"]["user_id"] == "dr.who");
  CHECK(j["model"]["sha256"] == std::string(64, 'a'));
  CHECK(j["preprocessing_sha256"] == std::string(64, 'c'));
  CHECK(j["probability"] == Approx(0.8));
  CHECK_FALSE(j.contains("error_code"));
  const Record back = from_json_line(to_json_line(r));
  CHECK(to_json_line(back) == to_json_line(r));
  Record e = r;
  e.outcome = Outcome::kError;
  e.error_code = ErrorCode::kInvalidDicom;
  e.error_message = "<input>: not DICOM \xff";  // invalid UTF-8 is replaced, never thrown on
  const auto je = nlohmann::json::parse(to_json_line(e));
  CHECK(je["error_code"] == "kInvalidDicom");
  CHECK_FALSE(je.contains("probability"));
  CHECK(error_code_of([] { from_json_line(R"({"event":"party"})"); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([] { from_json_line("{"); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("ATNA and FHIR exports carry the event, outcome, actor and references", "[audit]") {
  Record r = sample_record(0);
  const std::string xml = to_atna_xml(r);
  CHECK_THAT(xml, Catch::Contains("<AuditMessage>") && Catch::Contains("csd-code=\"110103\"") &&
                      Catch::Contains("EventOutcomeIndicator=\"0\"") && Catch::Contains("UserID=\"dr.who\"") &&
                      Catch::Contains("ParticipantObjectID=\"" + std::string(64, 'd') + "\""));
  r.outcome = Outcome::kError;
  r.error_code = ErrorCode::kInvalidDicom;
  r.error_message = "a <b> & \"c\"";
  CHECK_THAT(to_atna_xml(r), Catch::Contains("EventOutcomeIndicator=\"4\"") && Catch::Contains("a &lt;b&gt; &amp; &quot;c&quot;"));
  const auto f = nlohmann::json::parse(to_fhir_audit_event(r));
  CHECK(f["resourceType"] == "AuditEvent");
  CHECK(f["type"]["code"] == "110103");
  CHECK(f["outcome"] == "4");
  CHECK(f["agent"][0]["who"]["identifier"]["value"] == "dr.who");
  CHECK(f["recorded"] == r.timestamp);
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
  FileSink::open(path.string())->write(sample_record(99999));  // appends, never truncates
  const auto lines = lines_of(path);
  for (const auto& line : lines) CHECK_NOTHROW(nlohmann::json::parse(line));
  CHECK(lines.size() == 8 * 200 + 1);
}

TEST_CASE("FileSink reports an unopenable path as kIo and a failed write as kAuditFailed", "[audit][errors]") {
  std::string msg;
  CHECK(error_code_of([] { FileSink::open("/nonexistent-dir/audit.jsonl"); }, &msg) == ErrorCode::kIo);
  CHECK_THAT(msg, Catch::Contains("/nonexistent-dir/audit.jsonl"));
  auto full = FileSink::open("/dev/full");  // every write fails with ENOSPC
  CHECK(error_code_of([&] { full->write(sample_record(0)); }, &msg) == ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("/dev/full"));
}

TEST_CASE("a chained log verifies, with its record count, and every line links to the one before", "[audit][chain]") {
  test::TempDir dir;
  const fs::path path = make_chain(dir, 5);
  const auto result = verify_log(path.string(), ring());
  CHECK(result.ok);
  CHECK(result.closed);
  CHECK(result.records == 6);  // 5 records + the closing checkpoint
  const auto lines = lines_of(path);
  REQUIRE(lines.size() == 6);
  const auto first = nlohmann::json::parse(lines[0]), second = nlohmann::json::parse(lines[1]);
  CHECK(first["prev_mac"] == std::string(64, '0'));
  CHECK(second["prev_mac"] == first["mac"]);
  CHECK(nlohmann::json::parse(lines[5])["event"] == "checkpoint");
  CHECK_FALSE(verify_log(path.string(), ring(0, 'x')).ok);  // wrong key
  std::vector<Record> reports;
  verify_log(path.string(), ring(), false, CallbackSink::create([&](const Record& r) { reports.push_back(r); }));
  verify_log(path.string(), ring(0, 'x'), false, CallbackSink::create([&](const Record& r) { reports.push_back(r); }));
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].event == EventType::kLogVerified);
  CHECK(reports[0].outcome == audit::Outcome::kOk);
  CHECK_THAT(reports[0].detail, Catch::Contains("6 lines verified, closed"));
  CHECK(reports[1].outcome == audit::Outcome::kError);
  CHECK(reports[1].sequence > reports[0].sequence);
}

TEST_CASE("verify_log names the first tampered record for every kind of tampering", "[audit][chain]") {
  test::TempDir dir;
  const fs::path path = make_chain(dir, 6);
  const auto original = lines_of(path);
  auto check_tamper = [&](std::vector<std::string> lines, std::int64_t index, const std::string& expected) {
    write_lines(dir / "t.jsonl", lines);
    const auto r = verify_log((dir / "t.jsonl").string(), ring());
    INFO(r.problem);
    CHECK_FALSE(r.ok);
    CHECK(r.first_bad_index == index);
    CHECK_THAT(r.problem, Catch::Contains(expected));
  };
  SECTION("an edited field") {
    auto l = original;
    const auto pos = l[3].find("\"tier\":\"high\"");
    REQUIRE(pos != std::string::npos);
    l[3].replace(pos, 13, "\"tier\":\"low\" ");
    check_tamper(l, 3, "modified");
  }
  SECTION("a deleted record") {
    auto l = original;
    l.erase(l.begin() + 2);
    check_tamper(l, 2, "deleted");
  }
  SECTION("an inserted (replayed) record") {
    auto l = original;
    l.insert(l.begin() + 4, original[1]);
    check_tamper(l, 4, "inserted");
  }
  SECTION("an inserted forged record") {
    auto l = original;
    l.insert(l.begin() + 2, to_json_line(sample_record(42)));
    check_tamper(l, 2, "modified or inserted");
  }
  SECTION("two records swapped") {
    auto l = original;
    std::swap(l[1], l[2]);
    check_tamper(l, 1, "reordered");
  }
  SECTION("a truncated last line") {
    std::string text = test::read_text(path);
    text.resize(text.size() - 30);
    test::write_text(dir / "t.jsonl", text);
    const auto r = verify_log((dir / "t.jsonl").string(), ring());
    CHECK_FALSE(r.ok);
    CHECK(r.first_bad_index == 6);  // 6 records + the closing checkpoint: line 6 is the torn one
    CHECK_THAT(r.problem, Catch::Contains("torn"));
  }
  SECTION("a chain index that is not an unsigned integer (a float, a negative number)") {
    // Found by the audit fuzzer: a float index reached nlohmann's unsigned conversion (undefined
    // behaviour). Such a line is simply not a chained record: the chain breaks there.
    for (const std::string bad : {"1.5e+115", "-3", "2.5"}) {
      auto l = original;
      const auto pos = l[2].find("\"chain_index\":2");
      REQUIRE(pos != std::string::npos);
      l[2].replace(pos, 15, "\"chain_index\":" + bad);
      write_lines(dir / "t.jsonl", l);
      const auto r = verify_log((dir / "t.jsonl").string(), ring());
      CHECK_FALSE(r.ok);
      CHECK(r.first_bad_index == 2);
    }
  }
  SECTION("records cut from the end at a line boundary") {
    auto l = original;
    l.resize(4);
    check_tamper(l, 4, "no closing checkpoint");
    write_lines(dir / "t.jsonl", l);
    CHECK(verify_log((dir / "t.jsonl").string(), ring(), /*allow_unclosed=*/true).ok);
  }
}

TEST_CASE("reopening a chained log verifies its tail and continues the chain", "[audit][chain]") {
  test::TempDir dir;
  const fs::path path = make_chain(dir, 3);
  {
    auto sink = ChainedFileSink::open(path.string(), ring());
    sink->write(sample_record(10));
  }  // the destructor closes
  const auto r = verify_log(path.string(), ring());
  CHECK(r.ok);
  CHECK(r.records == 6);
  CHECK(error_code_of([&] { ChainedFileSink::open(path.string(), ring(0, 'x')); }) == ErrorCode::kAuditFailed);
  std::string text = test::read_text(path);
  text.resize(text.size() - 5);
  test::write_text(dir / "torn.jsonl", text);
  std::string msg;
  CHECK(error_code_of([&] { ChainedFileSink::open((dir / "torn.jsonl").string(), ring()); }, &msg) ==
        ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("torn"));
  CHECK(test::read_text(dir / "torn.jsonl") == text);  // never extended
}

TEST_CASE("key rotation checkpoints under the old key and continues under the new one", "[audit][chain]") {
  test::TempDir dir;
  const fs::path path = dir / "rot.jsonl";
  {
    auto sink = ChainedFileSink::open(path.string(), ring());
    sink->write(sample_record(0));
    sink->rotate_key(1, std::string(32, 'n'));
    sink->write(sample_record(1));
    CHECK(error_code_of([&] { sink->rotate_key(1, std::string(32, 'm')); }) == ErrorCode::kInvalidArgument);
    sink->close();
  }
  Keyring both = ring();
  both.keys[1] = std::string(32, 'n');
  CHECK(verify_log(path.string(), both).ok);
  const auto only_old = verify_log(path.string(), ring());
  CHECK_FALSE(only_old.ok);
  CHECK(only_old.first_bad_index == 2);
  CHECK_THAT(only_old.problem, Catch::Contains("epoch 1"));
  CHECK(nlohmann::json::parse(lines_of(path)[1])["detail"].get<std::string>().rfind("key rotation", 0) == 0);
}

TEST_CASE("many threads writing to a chained log give a valid chain with every record", "[audit][chain]") {
  for (Durability mode : {Durability::kStrict, Durability::kBuffered}) {
    test::TempDir dir;
    ChainOptions options;
    options.durability = mode;
    options.checkpoint_every = 50;
    const fs::path path = dir / "mt.jsonl";
    {
      auto sink = ChainedFileSink::open(path.string(), ring(), options);
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          for (int i = 0; i < 100; ++i) sink->write(sample_record(t * 1000 + i));
        });
      }
      for (auto& th : threads) th.join();
      sink->close();
      CHECK(sink->dropped() == 0);
    }
    const auto r = verify_log(path.string(), ring());
    INFO(r.problem);
    CHECK(r.ok);
    std::set<std::uint64_t> sequences;
    int checkpoints = 0;
    for (const auto& line : lines_of(path)) {
      const auto j = nlohmann::json::parse(line);
      if (j["event"] == "checkpoint") {
        ++checkpoints;
      } else {
        sequences.insert(j["sequence"].get<std::uint64_t>());
      }
    }
    CHECK(sequences.size() == 400);  // none lost, none duplicated
    CHECK(checkpoints == 400 / 50 + 1);
  }
}

TEST_CASE("a buffered log counts what a full queue drops and stays verifiable", "[audit][chain]") {
  test::TempDir dir;
  ChainOptions options;
  options.durability = Durability::kBuffered;
  options.queue_capacity = 1;
  options.checkpoint_every = 0;
  const fs::path path = dir / "drop.jsonl";
  auto sink = ChainedFileSink::open(path.string(), ring(), options);
  for (int i = 0; i < 2000; ++i) sink->write(sample_record(i));
  sink->close();
  CHECK(sink->written() + sink->dropped() == 2000 + 1);  // + the closing checkpoint
  CHECK(verify_log(path.string(), ring()).ok);
}

TEST_CASE("a strict chained log on a full disk fails the write with kAuditFailed", "[audit][chain][errors]") {
  auto sink = ChainedFileSink::open("/dev/full", ring());
  std::string msg;
  CHECK(error_code_of([&] { sink->write(sample_record(0)); }, &msg) == ErrorCode::kAuditFailed);
  CHECK_THAT(msg, Catch::Contains("/dev/full"));
  test::TempDir dir;  // a path that cannot be opened for writing (a directory) fails at open, not later
  CHECK(error_code_of([&] { ChainedFileSink::open(dir.path().string(), ring()); }, &msg) == ErrorCode::kIo);
  CHECK_THAT(msg, Catch::Contains(dir.path().string()));
}

TEST_CASE("keys load from a file or the environment, and errors never show key material", "[audit][keys]") {
  test::TempDir dir;
  const std::string hex0 = "00112233445566778899aabbccddeeff", hex1 = "ffeeddccbbaa99887766554433221100ffee";
  test::write_text(dir / "keys", "# audit keys\n0 " + hex0 + "\n1 " + hex1 + "\n");
  const Keyring k = Keyring::load_file((dir / "keys").string());
  CHECK(k.current_epoch() == 1);
  CHECK(k.keys.at(0).size() == 16);
  test::write_text(dir / "single", hex0 + "\n");
  CHECK(Keyring::load_file((dir / "single").string()).current_epoch() == 0);
  const std::string secret = "0123456789abcdef0123456789abcdeg";  // one bad digit
  test::write_text(dir / "bad", secret + "\n");
  std::string msg;
  CHECK(error_code_of([&] { Keyring::load_file((dir / "bad").string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("line 1"));
  CHECK(msg.find("0123456789abcdef") == std::string::npos);
  test::write_text(dir / "short", "abcd\n");
  CHECK(error_code_of([&] { Keyring::load_file((dir / "short").string()); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { Keyring::load_file((dir / "none").string()); }) == ErrorCode::kNotFound);
  ::setenv("MEDINFER_TEST_AUDIT_KEY", hex0.c_str(), 1);
  CHECK(Keyring::from_environment("MEDINFER_TEST_AUDIT_KEY").keys.at(0) == k.keys.at(0));
  ::unsetenv("MEDINFER_TEST_AUDIT_KEY");
  CHECK(error_code_of([] { Keyring::from_environment("MEDINFER_TEST_AUDIT_KEY"); }) == ErrorCode::kNotFound);
  CHECK(derive_pseudonym_key(k) != k.keys.at(0));
  CHECK(derive_pseudonym_key(k) == derive_pseudonym_key(Keyring::load_file((dir / "single").string())));
}

TEST_CASE("SyslogSink sends RFC 5424 messages over UDP and octet-counted TCP", "[audit][syslog]") {
  const Record r = sample_record(0);
  SECTION("UDP") {
    const auto [s, port] = loopback_socket(SOCK_DGRAM);
    auto sink = SyslogSink::open("127.0.0.1", port, SyslogSink::Transport::kUdp);
    sink->write(r);
    char buf[8192] = {};
    const ssize_t n = ::recv(s, buf, sizeof buf - 1, 0);
    ::close(s);
    const std::string msg(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    CHECK(msg.rfind("<110>1 " + r.timestamp + " ", 0) == 0);
    CHECK_THAT(msg, Catch::Contains(" medinfer ") && Catch::Contains(" inference - {"));
    CHECK(nlohmann::json::parse(msg.substr(msg.find(" - {") + 3))["event_id"] == r.event_id);
  }
  SECTION("TCP") {
    const auto [s, port] = loopback_socket(SOCK_STREAM);
    REQUIRE(::listen(s, 1) == 0);
    auto sink = SyslogSink::open("127.0.0.1", port, SyslogSink::Transport::kTcp);
    const int c = ::accept(s, nullptr, nullptr);
    Record e = r;
    e.outcome = Outcome::kError;
    sink->write(r);
    sink->write(e);
    sink.reset();  // closes the connection: read until EOF
    std::string all;
    char buf[4096];
    for (ssize_t n; (n = ::recv(c, buf, sizeof buf, 0)) > 0;) all.append(buf, static_cast<std::size_t>(n));
    ::close(c);
    ::close(s);
    std::vector<std::string> frames;
    for (std::size_t pos = 0; pos < all.size();) {
      const auto space = all.find(' ', pos);
      REQUIRE(space != std::string::npos);
      const std::size_t size = std::stoul(all.substr(pos, space - pos));
      frames.push_back(all.substr(space + 1, size));
      pos = space + 1 + size;
    }
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].rfind("<110>1 ", 0) == 0);
    CHECK(frames[1].rfind("<107>1 ", 0) == 0);  // error outcome: severity 3
  }
  CHECK(error_code_of([] { SyslogSink::open("127.0.0.1", 1, SyslogSink::Transport::kTcp); }) == ErrorCode::kIo);
}

TEST_CASE("open_log opens the log a host asks for: plain, chained from a key file, or refused", "[audit][keys]") {
  test::TempDir dir;
  LogRequest plain;
  plain.path = (dir / "plain.jsonl").string();
  plain.key_from_environment = false;
  const OpenedLog a = open_log(plain);
  CHECK(a.sink != nullptr);
  CHECK(a.chain == nullptr);
  CHECK(a.pseudonym_key.empty());
  test::write_text(dir / "k", "0 " + std::string(64, 'a') + "\n");
  LogRequest chained = plain;
  chained.path = (dir / "chain.jsonl").string();
  chained.key_file = (dir / "k").string();
  chained.durability = Durability::kBuffered;
  OpenedLog b = open_log(chained);
  REQUIRE(b.chain != nullptr);
  CHECK(b.sink == b.chain);
  CHECK(b.pseudonym_key == derive_pseudonym_key(Keyring::load_file((dir / "k").string())));
  b.sink->write(sample_record(0));
  b.chain->close();
  CHECK(verify_log(chained.path, Keyring::load_file((dir / "k").string())).ok);
  LogRequest buffered_plain = plain;
  buffered_plain.durability = Durability::kBuffered;
  std::string message;
  CHECK(error_code_of([&] { open_log(buffered_plain); }, &message) == ErrorCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("needs an audit key"));
  CHECK(error_code_of([] { open_log(LogRequest{}); }) == ErrorCode::kInvalidArgument);
  LogRequest missing = chained;
  missing.key_file = (dir / "none").string();
  CHECK(error_code_of([&] { open_log(missing); }) == ErrorCode::kNotFound);
}

TEST_CASE("a run cut short is never extended into a log that verifies as whole", "[audit][chain][security]") {
  test::TempDir dir;
  const fs::path path = make_chain(dir, 4);  // run 1: 4 records + close
  {
    auto sink = ChainedFileSink::open(path.string(), ring());  // run 2
    for (int i = 0; i < 4; ++i) sink->write(sample_record(10 + i));
  }
  REQUIRE(verify_log(path.string(), ring()).ok);
  std::vector<std::string> lines = lines_of(path);
  REQUIRE(lines.size() == 10);
  // Cut inside run 2 (its last two records and its close), then an ordinary run appends and closes.
  lines.resize(7);
  write_lines(dir / "cut.jsonl", lines);
  {
    auto sink = ChainedFileSink::open((dir / "cut.jsonl").string(), ring());
    sink->write(sample_record(20));
  }
  const VerifyResult v = verify_log((dir / "cut.jsonl").string(), ring());
  CHECK_FALSE(v.ok);  // before: "OK: ... (closed)"
  CHECK(v.first_bad_index == 7);
  CHECK_THAT(v.problem, Catch::Contains("recovers a run that ended without its closing checkpoint") &&
                            Catch::Contains("after chain index 6"));
  // A reopened log whose previous run closed continues without a recovery record.
  {
    auto sink = ChainedFileSink::open(path.string(), ring());
    sink->write(sample_record(30));
  }
  CHECK(verify_log(path.string(), ring()).ok);
}

TEST_CASE("a witness proves what the chain alone cannot: deleted trailing runs, a cut tail, a swapped log",
          "[audit][chain][security]") {
  test::TempDir dir;
  const std::string witness = (dir / "witness.jsonl").string();
  ChainOptions options;
  options.witness = witness_file(witness);
  const std::string path = (dir / "chain.jsonl").string();
  for (int run = 0; run < 2; ++run) {
    auto sink = ChainedFileSink::open(path, ring(), options);
    for (int i = 0; i < 3; ++i) sink->write(sample_record(run * 10 + i));
  }  // two runs, each closed: heads at chain index 3 and 7
  REQUIRE(verify_log_with_witness(path, ring(), witness).ok);
  std::vector<std::string> lines = lines_of(path);
  REQUIRE(lines.size() == 8);
  CHECK(nlohmann::json::parse(lines[0])["log_id"].get<std::string>().size() == 32);

  // The second run deleted whole: the chain alone is whole and closed; the witness is not fooled.
  write_lines(dir / "one-run.jsonl", {lines.begin(), lines.begin() + 4});
  CHECK(verify_log((dir / "one-run.jsonl").string(), ring()).ok);  // what the chain cannot prove
  VerifyResult v = verify_log_with_witness((dir / "one-run.jsonl").string(), ring(), witness);
  CHECK_FALSE(v.ok);
  CHECK_THAT(v.problem, Catch::Contains("head at chain index 7") && Catch::Contains("records 4..7"));

  // A cut tail inside the second run, accepted as unclosed: still caught by the witness.
  write_lines(dir / "cut.jsonl", {lines.begin(), lines.begin() + 6});
  CHECK_FALSE(verify_log_with_witness((dir / "cut.jsonl").string(), ring(), witness, true).ok);

  // Another log under the same key, with its own witness: swapped in, it verifies alone, not with ours.
  const std::string other = (dir / "other.jsonl").string();
  ChainOptions other_options;
  other_options.witness = witness_file((dir / "other-witness.jsonl").string());
  {
    auto sink = ChainedFileSink::open(other, ring(), other_options);
    sink->write(sample_record(99));
  }
  CHECK(verify_log(other, ring()).ok);
  v = verify_log_with_witness(other, ring(), witness);
  CHECK_FALSE(v.ok);
  CHECK_THAT(v.problem, Catch::Contains("swapped"));

  // A witness missing one head is reported too (it lost a head, or a key holder wrote a checkpoint).
  std::vector<std::string> heads = lines_of(witness);
  REQUIRE(heads.size() == 2);
  write_lines(dir / "short-witness.jsonl", {heads[1]});
  v = verify_log_with_witness(path, ring(), (dir / "short-witness.jsonl").string());
  CHECK_FALSE(v.ok);
  CHECK(v.first_bad_index == 3);
  CHECK_THAT(v.problem, Catch::Contains("checkpoint the witness does not hold"));
  // Lines of another log spliced in are refused by the chain itself.
  std::vector<std::string> spliced = lines;
  spliced.push_back(lines_of(other).back());
  write_lines(dir / "spliced.jsonl", spliced);
  CHECK_FALSE(verify_log((dir / "spliced.jsonl").string(), ring()).ok);
}

TEST_CASE("a chained log numbers its records across runs: sequence and chain index continue", "[audit][chain]") {
  test::TempDir dir;
  const std::string path = (dir / "runs.jsonl").string();
  for (int run = 0; run < 3; ++run) {
    auto sink = ChainedFileSink::open(path, ring());
    for (int i = 0; i < 2; ++i) sink->write(sample_record(0));  // each process would number from 1
  }
  std::uint64_t expected_sequence = 1, expected_index = 0;
  for (const auto& line : lines_of(path)) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j["chain_index"] == expected_index++);
    if (j["event"] != "checkpoint") CHECK(j["sequence"] == expected_sequence++);
  }
  CHECK(expected_sequence == 7);  // 3 runs x 2 records, numbered 1..6 (before: each writer's own numbers)
  CHECK(verify_log(path, ring()).ok);
}
