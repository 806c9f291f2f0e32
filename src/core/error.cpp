#include <medinfer/error.hpp>

namespace medinfer {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "kInvalidArgument";
    case ErrorCode::kInvalidDicom: return "kInvalidDicom";
    case ErrorCode::kUnsupported: return "kUnsupported";
    case ErrorCode::kResourceLimit: return "kResourceLimit";
    case ErrorCode::kModelIntegrity: return "kModelIntegrity";
    case ErrorCode::kIo: return "kIo";
    case ErrorCode::kNotFound: return "kNotFound";
    case ErrorCode::kAuditFailed: return "kAuditFailed";
    case ErrorCode::kInternal: return "kInternal";
    case ErrorCode::kOverloaded: return "kOverloaded";
    case ErrorCode::kCancelled: return "kCancelled";
  }
  return "kUnknown";
}

Error::Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

}  // namespace medinfer
