#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace medinfer::audit {

std::string to_json_line(const Record& r) {
  nlohmann::ordered_json j;
  j["timestamp"] = r.timestamp;
  j["event"] = r.event;
  j["model"] = {{"name", r.model.name}, {"version", r.model.version}, {"sha256", r.model.sha256}};
  j["input_sha256"] = r.input_sha256;
  j["outcome"] = r.outcome;
  if (r.outcome == "error") {
    j["error_code"] = r.error_code;
    j["error_message"] = r.error_message;
  } else {
    j["raw_score"] = r.raw_score;
    j["probability"] = r.probability;
    j["tier"] = r.tier;
    j["escalate"] = r.escalate;
    if (!r.reason.empty()) j["reason"] = r.reason;
  }
  j["latency_ms"] = std::round(r.latency_ms * 1000.0) / 1000.0;
  // Replace invalid UTF-8 rather than throw: an audit line must always be producible.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Sink::~Sink() = default;

struct FileSink::Impl {
  std::mutex mutex;
  std::string path;
  std::FILE* file = nullptr;
  ~Impl() {
    if (file) std::fclose(file);
  }
};

std::shared_ptr<FileSink> FileSink::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->file = std::fopen(path.c_str(), "ab");
  if (impl->file == nullptr) {
    throw Error(ErrorCode::kIo, path + ": cannot open the audit log for appending: " + std::strerror(errno));
  }
  return std::shared_ptr<FileSink>(new FileSink(std::move(impl)));
}

FileSink::FileSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FileSink::~FileSink() = default;

void FileSink::write(const Record& record) {
  const std::string line = to_json_line(record) + "\n";
  std::lock_guard<std::mutex> lock(impl_->mutex);
  // One fwrite per line under the lock, then flush: concurrent records never interleave, and a
  // record is on its way to the disk before the caller sees the result it describes.
  const std::size_t written = std::fwrite(line.data(), 1, line.size(), impl_->file);
  if (written != line.size() || std::fflush(impl_->file) != 0) {
    const int err = errno;
    std::clearerr(impl_->file);
    throw Error(ErrorCode::kAuditFailed, impl_->path + ": cannot write the audit record: " + std::strerror(err));
  }
}

}  // namespace medinfer::audit
