// Audit: every inference and every model event recorded, with no patient identifier, delivered to
// host-chosen sinks: a callback, a plain JSON Lines file, a tamper-evident HMAC hash-chained JSON Lines
// file, RFC 5424 syslog; exportable as DICOM PS3.15 A.5 (IHE ATNA) and FHIR R4 AuditEvent.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/error.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/model_identity.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace medinfer::audit {

enum class EventType {
  kInference,            ///< one predict() call, successful or not
  kModelOpened,          ///< a package passed its checks and its engine is ready
  kModelRefused,         ///< Pipeline::open failed (integrity, manifest, engine)
  kConfigurationChange,  ///< reported by the host (Pipeline::record_event)
  kOverride,             ///< a calibration or policy override, reported by the host
  kLogVerified,          ///< verify_log() ran (when given a sink to report to)
  kCheckpoint,           ///< written by ChainedFileSink: periodic, on key rotation, on close
  kDicomTransfer,        ///< DICOM instances received or sent by a host (Pipeline::record_event)
};

/// "inference", "model_opened", "model_refused", "configuration_change", "override",
/// "log_verified", "checkpoint", "dicom_transfer".
MEDINFER_API const char* to_string(EventType type) noexcept;

/// Who asked: host-supplied ids, recorded as given (do not put patient data here).
struct Actor {
  std::string user_id;
  std::string application_id;
};

/// One audit event. Contains no patient name, ID, birth date or accession number, and no file path
/// (paths often carry patient names). Study/series/instance are referenced by keyed pseudonyms
/// (HMAC-SHA256 of the UID under the host's pseudonym key), or omitted without a key; raw UIDs appear
/// only when the host opts in (PipelineOptions::include_identifiers).
/// How an event ended.
enum class Outcome { kOk, kIndeterminate, kError };
/// "ok", "indeterminate", "error".
MEDINFER_API const char* to_string(Outcome outcome) noexcept;

/// A problem the input's header had that did not stop the prediction (dicom::HeaderWarning, with
/// the input's path replaced by "<input>"): `code` is the warning kind's name ("invalid_value", ...).
struct InputWarning {
  std::string code, tag, message;
};

struct Record {
  std::string timestamp;             ///< RFC 3339 UTC with microseconds: "2026-11-23T10:15:00.123456Z"
  std::string event_id;              ///< random UUID (version 4)
  /// The host's id of the request that caused this record (an HTTP X-Request-Id: Input::request_id);
  /// empty when none (JSON "request_id", present only when set).
  std::string request_id;
  /// Emission order within this process (1, 2, ...); in a chained log, the log's own numbering of its
  /// records, continued across every run that wrote it. 0 for checkpoints.
  std::uint64_t sequence = 0;
  EventType event = EventType::kInference;
  Actor actor;
  std::string host;                  ///< this machine's host name
  ModelIdentity model;
  std::string preprocessing_sha256;  ///< SHA-256 of the package's preprocessing spec (canonical JSON)
  std::string input_sha256;          ///< SHA-256 of the decoded pixels; empty if not decoded
  std::string study_ref, series_ref, instance_ref;  ///< pseudonyms (or UIDs on opt-in); may be empty
  Outcome outcome = Outcome::kOk;
  /// Inference with outcome != kError: the result's primary finding (its label is written for
  /// multi-output packages only). The same Finding type Result and risk use.
  Finding finding;
  std::vector<Finding> findings;     ///< multi-output packages: every label's finding, in label order
  Arm arm = Arm::kNone;              ///< during an A/B test, the arm that served the request
  std::optional<ErrorCode> error_code;  ///< set when outcome == kError
  std::string error_message;         ///< with the input path replaced by "<input>"
  double latency_ms = 0.0;
  std::string detail;                ///< free text of non-inference events
  std::vector<InputWarning> input_warnings;  ///< inference: the input header's warnings (JSON "input_warnings")
};

/// One JSON object on one line (no trailing newline).
MEDINFER_API std::string to_json_line(const Record& record);
/// Parses a line written by to_json_line (or a chained log line; chain fields are ignored).
/// Throws Error(kInvalidArgument) naming the field.
MEDINFER_API Record from_json_line(const std::string& line);

/// A DICOM PS3.15 A.5 audit message (IHE ATNA) for the record, as one XML document on one line.
MEDINFER_API std::string to_atna_xml(const Record& record);
/// A FHIR R4 AuditEvent resource for the record, as one JSON object on one line.
MEDINFER_API std::string to_fhir_audit_event(const Record& record);

/// A destination for records. write() may be called from several threads at once: implementations
/// must be thread-safe. A write that throws makes the prediction fail with kAuditFailed.
class MEDINFER_API Sink {
 public:
  virtual ~Sink();
  virtual void write(const Record& record) = 0;
};

/// Calls a host function for every record (from the predicting thread). Thread-safe if `fn` is.
class MEDINFER_API CallbackSink final : public Sink {
 public:
  static std::shared_ptr<CallbackSink> create(std::function<void(const Record&)> fn);
  void write(const Record& record) override;

 private:
  explicit CallbackSink(std::function<void(const Record&)> fn);
  std::function<void(const Record&)> fn_;
};

/// Appends plain JSON Lines, one record per line, flushed after each. Thread-safe. Not
/// tamper-evident: use ChainedFileSink for that.
class MEDINFER_API FileSink final : public Sink {
 public:
  /// Opens (creating, or appending to) `path`. Throws Error(kIo) naming the path.
  static std::shared_ptr<FileSink> open(const std::string& path);
  ~FileSink() override;
  /// Throws Error(kAuditFailed) if the line cannot be written completely.
  void write(const Record& record) override;

 private:
  struct Impl;
  explicit FileSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// HMAC keys by epoch. Key bytes are never logged nor put in an exception message.
struct MEDINFER_API Keyring {
  std::map<std::uint32_t, std::string> keys;  ///< epoch -> key bytes (at least 16)

  /// The highest epoch; throws Error(kInvalidArgument) when empty.
  std::uint32_t current_epoch() const;
  /// Reads a key file: lines "EPOCH HEX" (or a single line "HEX", epoch 0), hex of 16..64 bytes,
  /// '#' comments. Throws Error(kNotFound/kIo/kInvalidArgument) naming the file and line, never the key.
  static Keyring load_file(const std::string& path);
  /// The same format from an environment variable's value. Throws Error(kNotFound) when unset.
  static Keyring from_environment(const std::string& variable = "MEDINFER_AUDIT_KEY");
};

/// A key for PipelineOptions::pseudonym_key derived from the keyring's oldest key (HMAC-SHA256 of a
/// fixed label), so pseudonyms stay stable across key rotation and the raw audit key is never reused.
MEDINFER_API std::string derive_pseudonym_key(const Keyring& keys);

enum class Durability {
  kStrict,    ///< written and fsync'd before write() returns; failure -> kAuditFailed
  kBuffered,  ///< queued for a writer thread; a full queue drops (counted); flushed and fsync'd on close
};
/// "strict", "buffered" (the CLI's --audit-mode values).
MEDINFER_API const char* to_string(Durability durability) noexcept;

/// The head of a chained log at one of its checkpoints: what a witness keeps outside the log, so that a
/// cut tail, deleted trailing runs or a swapped log can be proven later (verify_log with a witness).
struct WitnessHead {
  std::string log_id;           ///< the log's id (random, 32 hex digits; covered by every line's MAC)
  std::uint64_t chain_index = 0;  ///< the checkpoint line's chain index
  std::string mac;              ///< the checkpoint line's MAC
  std::string timestamp;        ///< when it was written (RFC 3339 UTC)
  std::string reason;           ///< "periodic", "key rotation to epoch N", "close", "recovery: ..."
};
/// Receives every head (from the writing thread, after the checkpoint line is on disk). Throwing fails
/// the write that triggered the checkpoint with kAuditFailed.
using Witness = std::function<void(const WitnessHead&)>;
/// A witness that appends one JSON line per head to `path` ({"log_id", "chain_index", "mac",
/// "timestamp", "reason"}), fsync'd; keep it on another disk or host. Throws Error(kIo) when the file
/// cannot be opened.
MEDINFER_API Witness witness_file(const std::string& path);

struct ChainOptions {
  Durability durability = Durability::kStrict;
  std::size_t queue_capacity = 65536;      ///< kBuffered only
  std::uint64_t checkpoint_every = 1000;   ///< a checkpoint record after every N records (0: only on rotation/close)
  Witness witness;                         ///< every checkpoint's head also goes here (may be empty)
};

/// A tamper-evident JSON Lines log. Each line is a record plus "log_id" (random, fixed when the log is
/// created), "chain_index", "key_epoch", "prev_mac" (the previous line's MAC; 64 zeros for the first)
/// and "mac" = HMAC-SHA256 under the epoch's key of the line's bytes before the mac field. Reopening an existing log verifies its last
/// line and continues the chain; a torn last line fails with kAuditFailed instead of being extended.
class MEDINFER_API ChainedFileSink final : public Sink {
 public:
  /// Throws Error(kIo) (cannot open), Error(kAuditFailed) (torn or unverifiable tail),
  /// Error(kInvalidArgument) (no key).
  static std::shared_ptr<ChainedFileSink> open(const std::string& path, const Keyring& keys,
                                               const ChainOptions& options = {});
  ~ChainedFileSink() override;
  void write(const Record& record) override;
  /// Writes a checkpoint under the current key, then continues under (epoch, key); epoch must grow.
  void rotate_key(std::uint32_t epoch, const std::string& key);
  /// Drains the queue, writes the closing checkpoint, fsyncs and closes. Idempotent; the destructor
  /// calls it and swallows errors. Throws Error(kAuditFailed) if anything could not be written.
  void close();
  std::uint64_t dropped() const noexcept;  ///< records dropped because the buffered queue was full
  std::uint64_t written() const noexcept;  ///< lines written (records and checkpoints)

 private:
  struct Impl;
  explicit ChainedFileSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// "The audit log the user asked for", as every host asks for it (the CLI's --audit-log/--audit-key/
/// --audit-mode, Python's Pipeline.open(audit_log=..., audit_key_file=...), the services).
struct LogRequest {
  std::string path;      ///< the JSON Lines file, created or appended to
  /// A key file (Keyring::load_file) making the log a tamper-evident chain. Empty: the key comes from
  /// $MEDINFER_AUDIT_KEY when `key_from_environment` and it is set; otherwise the log is plain JSON Lines.
  std::string key_file;
  bool key_from_environment = true;
  Durability durability = Durability::kStrict;  ///< kBuffered needs a key (kInvalidArgument otherwise)
  /// A witness file (witness_file) for the chain's checkpoint heads; needs a key.
  std::string witness_path;
};

/// An opened audit log: hand `sink` and `pseudonym_key` to PipelineOptions.
struct OpenedLog {
  std::shared_ptr<Sink> sink;
  /// The same sink when the log is chained (close() it when done, then check dropped()); else null.
  std::shared_ptr<ChainedFileSink> chain;
  /// derive_pseudonym_key of the keyring when chained; empty for a plain log (no study references).
  std::string pseudonym_key;
};

/// Opens the log `request` describes. Throws what Keyring::load_file, ChainedFileSink::open and
/// FileSink::open throw, and kInvalidArgument for an empty path or buffered durability without a key.
MEDINFER_API OpenedLog open_log(const LogRequest& request);

/// What verify_log found.
struct VerifyResult {
  bool ok = false;
  std::uint64_t records = 0;         ///< lines that verified before the first problem (all, when ok)
  bool closed = false;               ///< the last line is a closing checkpoint
  std::int64_t first_bad_index = -1; ///< 0-based line index of the first problem
  std::string problem;               ///< "record 7 was modified (MAC mismatch)", ...
};

/// Checks every line's MAC, index and link. Names the first record that was modified, deleted,
/// inserted or reordered, and a torn last line. A log without a closing checkpoint is not ok unless
/// `allow_unclosed` (a running writer's log, or one truncated at a record boundary: the two cannot be
/// told apart without an external anchor). When `report_to` is set, a log_verified record with the
/// outcome is written to it. Throws Error(kNotFound/kIo) for an unreadable file.
MEDINFER_API VerifyResult verify_log(const std::string& path, const Keyring& keys, bool allow_unclosed = false,
                                     const std::shared_ptr<Sink>& report_to = nullptr);
/// verify_log, then the log against a witness file (witness_file): every head the witness holds for
/// this log's id must still be in the log, with the same MAC. Reported: a head beyond the log's end
/// (records cut from its end, or whole trailing runs deleted, naming the missing chain indexes), a head
/// whose line differs (the log was replaced), and a witness that holds no head of this log but heads of
/// another (the log was swapped). Throws Error(kNotFound/kIo/kInvalidArgument) for an unreadable or
/// malformed witness file.
MEDINFER_API VerifyResult verify_log_with_witness(const std::string& path, const Keyring& keys,
                                                  const std::string& witness_path, bool allow_unclosed = false);

/// RFC 5424 syslog over UDP (one datagram per record) or TCP (RFC 6587 octet counting), facility
/// 13 (log audit), severity informational (error outcomes: error). Thread-safe.
class MEDINFER_API SyslogSink final : public Sink {
 public:
  enum class Transport { kUdp, kTcp };
  /// Throws Error(kIo) when the address cannot be resolved or (TCP) connected.
  static std::shared_ptr<SyslogSink> open(const std::string& host, std::uint16_t port, Transport transport,
                                          const std::string& app_name = "medinfer");
  ~SyslogSink() override;
  /// Throws Error(kAuditFailed) when the message cannot be sent (TCP: after one reconnect attempt).
  void write(const Record& record) override;

 private:
  struct Impl;
  explicit SyslogSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer::audit
