// Internal logging: formats with fmt and hands the message to the host's handler, if any.
#pragma once

#include <medinfer/log.hpp>

#include <fmt/format.h>

#include <string>

namespace medinfer::detail {

bool log_enabled(LogLevel level) noexcept;
void log_message(LogLevel level, const std::string& message) noexcept;

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!log_enabled(level)) return;
  try {
    log_message(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {
    // formatting failed (out of memory): logging must never break a prediction
  }
}

}  // namespace medinfer::detail
