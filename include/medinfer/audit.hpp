// Audit: one record per prediction, delivered to host-chosen sinks. No patient identifier is recorded.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/model.hpp>

#include <memory>
#include <string>

namespace medinfer::audit {

/// One prediction, successful or not. Contains no patient identifier and no file path (paths often
/// carry patient names): the input is identified by `input_sha256`, the SHA-256 of its decoded pixels.
struct Record {
  std::string timestamp;       ///< UTC, ISO 8601 with milliseconds: "2026-11-23T10:15:00.123Z"
  std::string event = "prediction";
  ModelIdentity model;
  std::string input_sha256;    ///< empty when the input could not be decoded
  std::string outcome;         ///< "ok", "indeterminate" or "error"
  double raw_score = 0.0;      ///< set when outcome != "error"
  double probability = 0.0;
  std::string tier;
  bool escalate = false;
  std::string reason;          ///< why indeterminate
  std::string error_code;      ///< "kInvalidDicom", ... when outcome == "error"
  std::string error_message;   ///< the error's message with the input path replaced by "<input>"
  double latency_ms = 0.0;     ///< wall time of the prediction
};

/// One JSON object on one line (no trailing newline), keys as the Record's member names, with the
/// model as {"name", "version", "sha256"}.
MEDINFER_API std::string to_json_line(const Record& record);

/// A destination for records. write() is called from whichever thread made the prediction, possibly
/// concurrently: implementations must be thread-safe. A write that throws makes the prediction fail
/// with kAuditFailed: a result is never released unaudited.
class MEDINFER_API Sink {
 public:
  virtual ~Sink();
  virtual void write(const Record& record) = 0;
};

/// Appends JSON Lines to a file, one record per line, flushed after each record. Thread-safe.
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

}  // namespace medinfer::audit
