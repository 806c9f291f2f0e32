#include "core/log_internal.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

namespace medinfer {
namespace {

struct LogState {
  std::mutex mutex;
  std::shared_ptr<const LogHandler> handler;
  std::atomic<int> min_level{static_cast<int>(LogLevel::kError) + 1};  // off
};

LogState& state() {
  static LogState s;
  return s;
}

thread_local bool t_in_handler = false;

}  // namespace

void set_log_handler(LogHandler handler, LogLevel min_level) {
  auto& s = state();
  std::shared_ptr<const LogHandler> old;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    old = std::move(s.handler);
    if (handler) {
      s.handler = std::make_shared<const LogHandler>(std::move(handler));
      s.min_level = static_cast<int>(min_level);
    } else {
      s.min_level = static_cast<int>(LogLevel::kError) + 1;
    }
  }
  // The contract: once this returns, the old handler is neither running nor called again, so a
  // host may destroy what it captured. Wait for calls in flight on other threads (a handler that
  // replaces itself does not wait for its own call).
  if (old && !t_in_handler) {
    while (old.use_count() > 1) std::this_thread::yield();
  }
}

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "unknown";
}

namespace detail {

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= state().min_level.load(std::memory_order_relaxed);
}

void log_message(LogLevel level, const std::string& message) noexcept {
  std::shared_ptr<const LogHandler> handler;
  {
    auto& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    handler = s.handler;  // call outside the lock: a handler may log or reinstall itself
  }
  if (!handler) return;
  struct InHandler {
    InHandler() { t_in_handler = true; }
    ~InHandler() { t_in_handler = false; }
  } in_handler;
  try {
    (*handler)(level, message);
  } catch (...) {
    // the contract says handlers must not throw; never let one break a prediction
  }
}

}  // namespace detail
}  // namespace medinfer
