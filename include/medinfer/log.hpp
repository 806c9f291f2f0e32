// The host's logging callback. The library never writes to stdout or stderr itself.
#pragma once

#include <medinfer/export.hpp>

#include <functional>
#include <string_view>

namespace medinfer {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Receives every message at or above the minimum level. It may be called from any thread that uses
/// medinfer, concurrently; it must not throw (an exception from it is swallowed).
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

/// Installs `handler` (replacing the previous one) for messages at or above `min_level`; an empty
/// handler turns logging off, which is the default. Thread-safe. When it returns, the previous
/// handler is no longer running on any thread and will not be called again, so whatever it
/// captured may be destroyed (called from inside a handler, it does not wait for that call).
MEDINFER_API void set_log_handler(LogHandler handler, LogLevel min_level = LogLevel::kInfo);

/// "debug", "info", "warning", "error"
MEDINFER_API const char* to_string(LogLevel level) noexcept;

}  // namespace medinfer
