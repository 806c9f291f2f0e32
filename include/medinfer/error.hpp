// medinfer::Error: the one exception type the SDK throws, carrying an ErrorCode.
#pragma once

#include <medinfer/export.hpp>

#include <stdexcept>
#include <string>

namespace medinfer {

/// What went wrong, as a stable vocabulary a host can branch on. The numeric values are stable.
enum class ErrorCode {
  kInvalidArgument = 1,  ///< a caller-supplied value, manifest field or request is malformed
  kInvalidDicom = 2,     ///< the input is not DICOM, or is DICOM that is truncated or inconsistent
  kUnsupported = 3,      ///< valid input that this build cannot handle (transfer syntax, device, ...)
  kResourceLimit = 4,    ///< the input exceeds a configured limit (size, dimensions)
  kModelIntegrity = 5,   ///< a model package file is missing, unlisted, modified or escapes the package
  kIo = 6,               ///< reading or writing a file failed
  kNotFound = 7,         ///< a file or directory does not exist
  kAuditFailed = 8,      ///< an audit record could not be written; the result was not released
  kInternal = 9,         ///< a dependency failed unexpectedly or the model produced a non-finite value
  kOverloaded = 10,      ///< a bounded queue (the dynamic batcher's) is full: retry later or shed load
  kCancelled = 11,       ///< the caller cancelled the run before this input was started
};

/// "kInvalidDicom", "kModelIntegrity", ...: the enumerator's name, for logs and JSON.
MEDINFER_API const char* to_string(ErrorCode code) noexcept;

/// The inverse of to_string (e.g. for reading audit records). Throws Error(kInvalidArgument).
MEDINFER_API ErrorCode parse_error_code(const std::string& name);

/// Thrown by every medinfer function that fails. what() is the message, which names the file, tag,
/// field or index concerned. Exceptions of dependencies (LibTorch, OpenCV, DCMTK) never escape.
class MEDINFER_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace medinfer
