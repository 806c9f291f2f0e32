// The tamper-evident log: HMAC-SHA256 hash chain over JSON Lines, strict or buffered, and its verifier.
#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include "audit/audit_internal.hpp"
#include "core/file_util.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace medinfer::audit {
namespace {

using OJson = nlohmann::ordered_json;
const std::string kGenesis(64, '0');
const std::string kMacField = ",\"mac\":\"";

// Serialises a chained line: the record, its chain fields, then the MAC over everything before it.
std::string chained_line(const Record& r, const std::string& log_id, std::uint64_t index, std::uint32_t epoch,
                         const std::string& prev, const std::string& key) {
  OJson j = detail::to_json(r);
  if (!log_id.empty()) j["log_id"] = log_id;  // every MAC covers the log's identity
  j["chain_index"] = index;
  j["key_epoch"] = epoch;
  j["prev_mac"] = prev;
  std::string body = j.dump(-1, ' ', false, OJson::error_handler_t::replace);
  const std::string mac = medinfer::detail::hmac_sha256_hex(key, body);
  body.pop_back();  // the closing brace
  return body + kMacField + mac + "\"}\n";
}

struct ParsedLine {
  bool parsed = false;
  std::uint64_t index = 0;
  std::uint32_t epoch = 0;
  std::string prev, mac, body;  // body: the bytes the MAC covers
  std::string event, detail, timestamp;
  std::string log_id;  // empty on lines written before logs had ids
  std::uint64_t sequence = 0;
};

// Splits a line into its MAC and the bytes it covers, and reads the chain fields. parsed=false when
// the line is not a chained record at all.
ParsedLine parse_line(const std::string& line) {
  ParsedLine p;
  const auto pos = line.rfind(kMacField);
  if (pos == std::string::npos || line.size() != pos + kMacField.size() + 64 + 2 ||
      line.compare(line.size() - 2, 2, "\"}") != 0) {
    return p;
  }
  p.mac = line.substr(pos + kMacField.size(), 64);
  p.body = line.substr(0, pos) + "}";
  try {
    const auto j = medinfer::detail::parse_json(p.body, "audit chain line");
    // Only unsigned integers: nlohmann converts a float (1e115) or a negative number to an unsigned
    // type with undefined behaviour, so anything else makes the line unparsed (the fuzzer found it).
    const auto& index = j.at("chain_index");
    const auto& epoch = j.at("key_epoch");
    if (!index.is_number_unsigned() || !epoch.is_number_unsigned() ||
        epoch.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
      return p;
    }
    p.index = index.get<std::uint64_t>();
    p.epoch = static_cast<std::uint32_t>(epoch.get<std::uint64_t>());
    p.prev = j.at("prev_mac").get<std::string>();
    p.event = j.value("event", "");
    p.detail = j.value("detail", "");
    p.timestamp = j.value("timestamp", "");
    p.log_id = j.value("log_id", "");
    if (j.contains("sequence") && j["sequence"].is_number_unsigned()) p.sequence = j["sequence"].get<std::uint64_t>();
    p.parsed = true;
  } catch (const std::exception&) {
    p.parsed = false;
  }
  return p;
}

// Writes all of `bytes` to `fd` (short writes and EINTR retried); 0, or the errno of the failed write.
int write_whole(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    off += static_cast<std::size_t>(n);
  }
  return 0;
}

bool mac_ok(const ParsedLine& p, const Keyring& keys) {
  auto it = keys.keys.find(p.epoch);
  return it != keys.keys.end() &&
         medinfer::detail::constant_time_equal(medinfer::detail::hmac_sha256_hex(it->second, p.body), p.mac);
}

bool is_closing(const ParsedLine& p) { return p.event == "checkpoint" && p.detail.rfind("close", 0) == 0; }
bool is_recovery(const ParsedLine& p) { return p.event == "checkpoint" && p.detail.rfind("recovery", 0) == 0; }
// The epoch a rotation checkpoint moves to ("key rotation to epoch N; ..."), or -1.
long long rotation_target(const ParsedLine& p) {
  static const std::string prefix = "key rotation to epoch ";
  if (p.event != "checkpoint" || p.detail.rfind(prefix, 0) != 0) return -1;
  return std::strtoll(p.detail.c_str() + prefix.size(), nullptr, 10);
}

}  // namespace

struct ChainedFileSink::Impl {
  std::string path;
  Keyring keys;
  ChainOptions options;
  int fd = -1;

  std::mutex file_mutex;  // the chain state and the file
  std::uint32_t epoch = 0;
  std::string prev_mac = kGenesis;
  std::string log_id;  // fixed when the log is created, read back when it is continued
  std::uint64_t next_index = 0;
  std::uint64_t last_sequence = 0;  // the log's own record numbering, continued across runs
  std::uint64_t since_checkpoint = 0;
  bool closed = false;
  std::atomic<std::uint64_t> dropped{0}, written{0};

  std::mutex queue_mutex;  // kBuffered
  std::condition_variable queue_cv, idle_cv;
  std::deque<Record> queue;
  bool stopping = false, writer_busy = false;
  std::string failure;  // first asynchronous write error
  std::thread writer;

  [[noreturn]] void fail(const std::string& what, int err) {
    throw Error(ErrorCode::kAuditFailed, path + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
  }

  void write_all(const std::string& bytes, bool sync) {
    if (const int err = write_whole(fd, bytes)) fail("cannot write the audit record", err);
    if (sync && ::fsync(fd) != 0) fail("cannot fsync the audit log", errno);
  }

  Record checkpoint_record(const std::string& why) const {
    Record c;
    detail::stamp(c, /*numbered=*/false);
    c.event = EventType::kCheckpoint;
    c.outcome = Outcome::kOk;
    c.detail = why + "; lines=" + std::to_string(next_index) + "; head=" + prev_mac;
    return c;
  }

  // Appends one record to the chain (file_mutex held). A checkpoint follows every N records.
  void append_locked(const Record& r, bool sync) {
    if (closed) fail("the audit log is closed", 0);
    // In a chained log `sequence` numbers the log's records (1, 2, ... across every run that wrote it);
    // checkpoints keep 0.
    Record numbered = r;
    if (r.event != EventType::kCheckpoint) numbered.sequence = ++last_sequence;
    const std::string line = chained_line(numbered, log_id, next_index, epoch, prev_mac, keys.keys.at(epoch));
    write_all(line, sync);
    prev_mac = line.substr(line.size() - 3 - 64, 64);  // the line ends with the MAC, "}\n"
    ++next_index;
    ++written;
    if (r.event == EventType::kCheckpoint && options.witness) {
      const WitnessHead head{log_id, next_index - 1, prev_mac, r.timestamp, r.detail.substr(0, r.detail.find(';'))};
      try {
        options.witness(head);
      } catch (const std::exception& e) {
        fail(std::string("the witness did not take the checkpoint's head: ") + e.what(), 0);
      }
    }
    if (r.event != EventType::kCheckpoint && options.checkpoint_every && ++since_checkpoint >= options.checkpoint_every) {
      since_checkpoint = 0;
      append_locked(checkpoint_record("periodic"), sync);
    }
  }

  void writer_loop() {
    std::unique_lock<std::mutex> lock(queue_mutex);
    for (;;) {
      queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty() && stopping) break;
      std::deque<Record> batch;
      batch.swap(queue);
      writer_busy = true;
      lock.unlock();
      std::string error;
      {
        std::lock_guard<std::mutex> file_lock(file_mutex);
        for (const Record& r : batch) {
          try {
            append_locked(r, false);
          } catch (const Error& e) {
            error = e.what();
            dropped += 1;
          }
        }
      }
      lock.lock();
      if (!error.empty() && failure.empty()) failure = error;
      writer_busy = false;
      idle_cv.notify_all();
    }
  }

  void drain() {
    if (options.durability != Durability::kBuffered) return;
    std::unique_lock<std::mutex> lock(queue_mutex);
    idle_cv.wait(lock, [&] { return queue.empty() && !writer_busy; });
  }

  // Reads the last line of an existing log, verifies it and continues its chain.
  void continue_chain() {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("cannot stat the audit log", errno);
    if (st.st_size == 0) {
      log_id = medinfer::detail::to_hex(medinfer::detail::random_bytes(16));  // a new log
      return;
    }
    const std::size_t size = static_cast<std::size_t>(st.st_size);
    const std::size_t tail = std::min<std::size_t>(size, 1 << 20);
    std::string buf(tail, '\0');
    if (::pread(fd, buf.data(), tail, static_cast<off_t>(size - tail)) != static_cast<ssize_t>(tail)) {
      fail("cannot read the audit log's tail", errno);
    }
    if (buf.back() != '\n') {
      fail("the last line is torn (the log ends without a newline at byte " + std::to_string(size) +
               "); refusing to extend it: check it with 'medinfer audit verify'",
           0);
    }
    buf.pop_back();
    const auto start = buf.rfind('\n');
    const ParsedLine last = parse_line(start == std::string::npos ? buf : buf.substr(start + 1));
    if (!last.parsed) fail("the last line is not a chained audit record; refusing to extend it", 0);
    if (!mac_ok(last, keys)) fail("the last line does not verify under the given keys; refusing to extend it", 0);
    if (last.epoch > epoch) fail("the log is at key epoch " + std::to_string(last.epoch) + ", newer than the keyring's", 0);
    prev_mac = last.mac;
    next_index = last.index + 1;
    // The numbering continues from the last record in the tail (checkpoints carry none); without one
    // there, from the chain index, which no earlier sequence exceeds.
    last_sequence = last.index + 1;
    for (std::size_t end = buf.size(); end > 0;) {
      const auto begin = buf.rfind('\n', end - 1);
      const std::size_t from = begin == std::string::npos ? 0 : begin + 1;
      const ParsedLine p = parse_line(buf.substr(from, end - from));
      if (p.parsed && p.event != "checkpoint" && p.sequence > 0) {
        last_sequence = p.sequence;
        break;
      }
      if (begin == std::string::npos) break;
      end = begin;
    }
    // A log from before logs had ids gets one from here on (the verifier accepts an id-less prefix).
    log_id = last.log_id.empty() ? medinfer::detail::to_hex(medinfer::detail::random_bytes(16)) : last.log_id;
    // The previous run ended without its closing checkpoint (a crash, or a tail cut off): the chain is
    // continued only through a recovery record naming the last verified index, which the verifier
    // reports; an unclosed log is never silently extended into one that looks whole.
    if (!is_closing(last)) {
      append_locked(checkpoint_record("recovery: the previous run ended without its closing checkpoint after chain "
                                      "index " + std::to_string(last.index)),
                    true);
    }
  }
};

std::shared_ptr<ChainedFileSink> ChainedFileSink::open(const std::string& path, const Keyring& keys,
                                                       const ChainOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->keys = keys;
  impl->options = options;
  impl->epoch = keys.current_epoch();
  if (options.durability == Durability::kBuffered && options.queue_capacity == 0) {
    throw Error(ErrorCode::kInvalidArgument, "ChainOptions::queue_capacity must be > 0");
  }
  impl->fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (impl->fd < 0) {
    throw Error(ErrorCode::kIo, path + ": cannot open the audit log for appending: " + std::strerror(errno));
  }
  try {
    impl->continue_chain();
  } catch (...) {
    ::close(impl->fd);
    throw;
  }
  auto sink = std::shared_ptr<ChainedFileSink>(new ChainedFileSink(std::move(impl)));
  if (options.durability == Durability::kBuffered) {
    Impl* raw = sink->impl_.get();
    raw->writer = std::thread([raw] { raw->writer_loop(); });
  }
  return sink;
}

ChainedFileSink::ChainedFileSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChainedFileSink::~ChainedFileSink() {
  try {
    close();
  } catch (...) {
    // a destructor must not throw; close() explicitly to see the error
  }
  if (impl_->writer.joinable()) {
    {
      std::lock_guard<std::mutex> lock(impl_->queue_mutex);
      impl_->stopping = true;
    }
    impl_->queue_cv.notify_all();
    impl_->writer.join();
  }
  if (impl_->fd >= 0) ::close(impl_->fd);
}

void ChainedFileSink::write(const Record& record) {
  if (impl_->options.durability == Durability::kStrict) {
    std::lock_guard<std::mutex> lock(impl_->file_mutex);
    impl_->append_locked(record, true);
    return;
  }
  std::lock_guard<std::mutex> lock(impl_->queue_mutex);
  if (!impl_->failure.empty()) {
    throw Error(ErrorCode::kAuditFailed, "buffered audit writer failed earlier: " + impl_->failure);
  }
  if (impl_->stopping) throw Error(ErrorCode::kAuditFailed, impl_->path + ": the audit log is closed");
  if (impl_->queue.size() >= impl_->options.queue_capacity) {
    ++impl_->dropped;
    return;
  }
  impl_->queue.push_back(record);
  impl_->queue_cv.notify_one();
}

void ChainedFileSink::rotate_key(std::uint32_t epoch, const std::string& key) {
  if (key.size() < 16) throw Error(ErrorCode::kInvalidArgument, "rotate_key: a key has at least 16 bytes");
  impl_->drain();
  std::lock_guard<std::mutex> lock(impl_->file_mutex);
  if (epoch <= impl_->epoch) {
    throw Error(ErrorCode::kInvalidArgument, "rotate_key: epoch " + std::to_string(epoch) + " is not newer than " +
                                                 std::to_string(impl_->epoch));
  }
  impl_->append_locked(impl_->checkpoint_record("key rotation to epoch " + std::to_string(epoch)), true);
  impl_->keys.keys[epoch] = key;
  impl_->epoch = epoch;
}

void ChainedFileSink::close() {
  if (impl_->writer.joinable()) {
    impl_->drain();
    {
      std::lock_guard<std::mutex> lock(impl_->queue_mutex);
      impl_->stopping = true;
    }
    impl_->queue_cv.notify_all();
    impl_->writer.join();
  }
  std::lock_guard<std::mutex> lock(impl_->file_mutex);
  if (impl_->closed) return;
  impl_->append_locked(impl_->checkpoint_record("close"), true);
  impl_->closed = true;
  std::lock_guard<std::mutex> qlock(impl_->queue_mutex);
  if (!impl_->failure.empty()) {
    throw Error(ErrorCode::kAuditFailed, "buffered audit writer failed: " + impl_->failure);
  }
}

std::uint64_t ChainedFileSink::dropped() const noexcept { return impl_->dropped.load(); }
std::uint64_t ChainedFileSink::written() const noexcept { return impl_->written.load(); }

namespace {

VerifyResult verify_lines(const std::string& path, const Keyring& keys, bool allow_unclosed,
                          std::vector<ParsedLine>* lines_out = nullptr) {
  const std::string text = medinfer::detail::read_file(path, std::uint64_t{1} << 40);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    lines.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  VerifyResult result;
  const bool torn = !text.empty() && text.back() != '\n';
  std::vector<ParsedLine> parsed;
  parsed.reserve(lines.size());
  for (const auto& l : lines) parsed.push_back(parse_line(l));

  auto bad = [&](std::size_t i, std::string problem) {
    result.ok = false;
    result.first_bad_index = static_cast<std::int64_t>(i);
    result.problem = std::move(problem);
    return result;
  };
  std::string prev = kGenesis;
  std::uint64_t expected = 0;
  long long floor_epoch = 0;       // keys only move forward: no record under an epoch below this
  std::string log_id;              // once a line names the log, every later line must name the same one
  std::int64_t recovery_at = -1;   // the first run boundary that was recovered, not closed
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    const ParsedLine& p = parsed[i];
    const std::string rec = "record " + std::to_string(i);
    if (torn && i + 1 == parsed.size()) return bad(i, rec + " is torn: the log ends in the middle of a line (truncated)");
    if (!p.parsed) return bad(i, rec + " is not a chained audit record (modified or inserted)");
    if (keys.keys.find(p.epoch) == keys.keys.end()) {
      return bad(i, rec + " uses key epoch " + std::to_string(p.epoch) + ", which is not in the keyring");
    }
    if (!mac_ok(p, keys)) return bad(i, rec + " was modified or inserted (MAC mismatch)");
    if (p.index > expected) {
      for (std::size_t k = i + 1; k < parsed.size(); ++k) {
        if (parsed[k].parsed && parsed[k].index == expected) {
          return bad(i, rec + " is out of order (chain index " + std::to_string(p.index) + ", expected " +
                            std::to_string(expected) + "): records were reordered");
        }
      }
      return bad(i, "records with chain index " + std::to_string(expected) + ".." + std::to_string(p.index - 1) +
                        " were deleted before " + rec);
    }
    if (p.index < expected) {
      return bad(i, rec + " repeats chain index " + std::to_string(p.index) + ": a record was inserted (replayed)");
    }
    if (p.prev != prev) return bad(i, rec + " does not link to the record before it: the chain was broken");
    if (!log_id.empty() && p.log_id != log_id) {
      return bad(i, rec + " belongs to log '" + p.log_id + "', not to this log ('" + log_id +
                        "'): lines of another log were spliced in");
    }
    if (log_id.empty()) log_id = p.log_id;
    if (static_cast<long long>(p.epoch) < floor_epoch) {
      return bad(i, rec + " is under key epoch " + std::to_string(p.epoch) + " after the log moved to epoch " +
                        std::to_string(floor_epoch) + ": keys only move forward, and a retired key cannot add records");
    }
    floor_epoch = std::max({floor_epoch, static_cast<long long>(p.epoch), rotation_target(p)});
    if (is_recovery(p) && recovery_at < 0) recovery_at = static_cast<std::int64_t>(i);
    prev = p.mac;
    ++expected;
    ++result.records;
  }
  result.closed = !parsed.empty() && is_closing(parsed.back());
  if (lines_out) *lines_out = parsed;
  if (recovery_at >= 0) {
    const std::string detail = parsed[static_cast<std::size_t>(recovery_at)].detail;
    return bad(static_cast<std::size_t>(recovery_at),
               "record " + std::to_string(recovery_at) + " recovers a run that ended without its closing checkpoint " +
                   "(its writer crashed, or records were cut from its end): " + detail.substr(0, detail.find(';')));
  }
  if (!result.closed && !allow_unclosed) {
    return bad(parsed.size(), "the log has no closing checkpoint: its writer is still running or crashed, or records "
                              "were cut from its end");
  }
  result.ok = true;
  return result;
}

}  // namespace

VerifyResult verify_log(const std::string& path, const Keyring& keys, bool allow_unclosed,
                        const std::shared_ptr<Sink>& report_to) {
  const VerifyResult result = verify_lines(path, keys, allow_unclosed);
  if (report_to) {
    Record r;
    detail::stamp(r);
    r.event = EventType::kLogVerified;
    r.outcome = result.ok ? Outcome::kOk : Outcome::kError;
    if (!result.ok) r.error_code = ErrorCode::kAuditFailed, r.error_message = result.problem;
    r.detail = path + ": " + std::to_string(result.records) + " lines verified" + (result.closed ? ", closed" : "");
    report_to->write(r);
  }
  return result;
}

Witness witness_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) throw Error(ErrorCode::kIo, path + ": cannot open the witness file: " + std::strerror(errno));
  auto shared_fd = std::shared_ptr<int>(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  auto mutex = std::make_shared<std::mutex>();
  return [path, shared_fd, mutex](const WitnessHead& h) {
    OJson j;
    j["log_id"] = h.log_id;
    j["chain_index"] = h.chain_index;
    j["mac"] = h.mac;
    j["timestamp"] = h.timestamp;
    j["reason"] = h.reason;
    const std::string line = j.dump() + "\n";
    std::lock_guard<std::mutex> lock(*mutex);
    if (const int err = write_whole(*shared_fd, line)) {
      throw Error(ErrorCode::kAuditFailed, path + ": cannot write the witness: " + std::strerror(err));
    }
    if (::fsync(*shared_fd) != 0) throw Error(ErrorCode::kAuditFailed, path + ": cannot fsync the witness");
  };
}

VerifyResult verify_log_with_witness(const std::string& path, const Keyring& keys, const std::string& witness_path,
                                     bool allow_unclosed) {
  std::vector<ParsedLine> lines;
  VerifyResult result = verify_lines(path, keys, allow_unclosed, &lines);
  if (!result.ok) return result;
  auto bad = [&](std::int64_t i, std::string problem) {
    result.ok = false;
    result.first_bad_index = i;
    result.problem = std::move(problem);
    return result;
  };
  const std::string log_id = lines.empty() ? std::string() : lines.back().log_id;
  const std::string text = medinfer::detail::read_file(witness_path, std::uint64_t{1} << 30);
  std::set<std::uint64_t> witnessed;
  std::string other_log;
  std::istringstream in(text);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const std::string where = witness_path + " line " + std::to_string(n);
    const auto j = medinfer::detail::parse_json(line, where);
    medinfer::detail::require_object(j, where);
    const std::string id = medinfer::detail::get_string(j, "log_id", where);
    const std::int64_t index = medinfer::detail::get_integer(j, "chain_index", where);
    const std::string mac = medinfer::detail::get_string(j, "mac", where);
    if (index < 0) throw Error(ErrorCode::kInvalidArgument, where + ": chain_index: must not be negative");
    if (id != log_id) {
      other_log = id;
      continue;
    }
    const auto k = static_cast<std::uint64_t>(index);
    witnessed.insert(k);
    const std::string reason = j.contains("reason") && j["reason"].is_string() ? j["reason"].get<std::string>() : "";
    if (k >= lines.size()) {
      return bad(static_cast<std::int64_t>(lines.size()),
                 "the witness holds this log's head at chain index " + std::to_string(k) + " (" + reason +
                     "), but the log holds " + std::to_string(lines.size()) + " records: records " +
                     std::to_string(lines.size()) + ".." + std::to_string(k) +
                     " (at least) were cut from its end, or whole runs deleted");
    }
    if (lines[k].mac != mac) {
      return bad(static_cast<std::int64_t>(k), "record " + std::to_string(k) + " is not the line the witness holds (" +
                                                   reason + "): the log was replaced");
    }
  }
  if (witnessed.empty() && !other_log.empty()) {
    return bad(0, "the witness holds no head of this log ('" + log_id + "') but heads of log '" + other_log +
                      "': the log was swapped for another");
  }
  if (witnessed.empty()) return bad(0, "the witness holds no head of this log ('" + log_id + "')");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].event == "checkpoint" && !lines[i].log_id.empty() && witnessed.count(i) == 0) {
      return bad(static_cast<std::int64_t>(i),
                 "record " + std::to_string(i) + " is a checkpoint the witness does not hold: the witness lost a head, "
                 "or the checkpoint was written by someone holding the key without the witness");
    }
  }
  return result;
}

}  // namespace medinfer::audit
