// The simple sinks (callback, plain file) and key loading.
#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include "core/file_util.hpp"
#include "core/sha256.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>

namespace medinfer::audit {

Sink::~Sink() = default;

std::shared_ptr<CallbackSink> CallbackSink::create(std::function<void(const Record&)> fn) {
  if (!fn) throw Error(ErrorCode::kInvalidArgument, "CallbackSink::create: the function is empty");
  return std::shared_ptr<CallbackSink>(new CallbackSink(std::move(fn)));
}

CallbackSink::CallbackSink(std::function<void(const Record&)> fn) : fn_(std::move(fn)) {}

void CallbackSink::write(const Record& record) { fn_(record); }

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

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses key text. `source` names the file or variable in errors; key material never appears in one.
Keyring parse_keyring(const std::string& text, const std::string& source) {
  Keyring ring;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string a, b, extra;
    fields >> a >> b >> extra;
    if (a.empty()) continue;
    const std::string where = source + " line " + std::to_string(line_no);
    if (!extra.empty()) throw Error(ErrorCode::kInvalidArgument, where + ": expected 'EPOCH HEX' or 'HEX'");
    std::uint32_t epoch = 0;
    std::string hex = a;
    if (!b.empty()) {
      char* end = nullptr;
      const unsigned long e = std::strtoul(a.c_str(), &end, 10);
      if (end == a.c_str() || *end != '\0' || e > 0xFFFFFFFFul) {
        throw Error(ErrorCode::kInvalidArgument, where + ": the epoch is not a non-negative integer");
      }
      epoch = static_cast<std::uint32_t>(e);
      hex = b;
    }
    if (hex.size() % 2 != 0 || hex.size() < 32 || hex.size() > 128) {
      throw Error(ErrorCode::kInvalidArgument, where + ": a key is 16 to 64 bytes written as hex digits");
    }
    std::string key;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      const int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
      if (hi < 0 || lo < 0) throw Error(ErrorCode::kInvalidArgument, where + ": the key is not hexadecimal");
      key.push_back(static_cast<char>(hi * 16 + lo));
    }
    if (!ring.keys.emplace(epoch, std::move(key)).second) {
      throw Error(ErrorCode::kInvalidArgument, where + ": epoch " + std::to_string(epoch) + " appears twice");
    }
  }
  if (ring.keys.empty()) throw Error(ErrorCode::kInvalidArgument, source + ": no key");
  return ring;
}

}  // namespace

std::uint32_t Keyring::current_epoch() const {
  if (keys.empty()) throw Error(ErrorCode::kInvalidArgument, "audit keyring: no key");
  return keys.rbegin()->first;
}

Keyring Keyring::load_file(const std::string& path) {
  return parse_keyring(medinfer::detail::read_file(path, 1u << 20), path);
}

Keyring Keyring::from_environment(const std::string& variable) {
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr) throw Error(ErrorCode::kNotFound, "environment variable " + variable + " is not set");
  return parse_keyring(value, "environment variable " + variable);
}

std::string derive_pseudonym_key(const Keyring& keys) {
  if (keys.keys.empty()) throw Error(ErrorCode::kInvalidArgument, "audit keyring: no key");
  return medinfer::detail::hmac_sha256_hex(keys.keys.begin()->second, "medinfer-pseudonym-key-v1");
}

OpenedLog open_log(const LogRequest& request) {
  if (request.path.empty()) throw Error(ErrorCode::kInvalidArgument, "audit log: no path given");
  std::optional<Keyring> keys;
  if (!request.key_file.empty()) {
    keys = Keyring::load_file(request.key_file);
  } else if (request.key_from_environment && std::getenv("MEDINFER_AUDIT_KEY") != nullptr) {
    keys = Keyring::from_environment();
  }
  OpenedLog log;
  if (!keys) {
    if (!request.witness_path.empty()) {
      throw Error(ErrorCode::kInvalidArgument, request.path + ": a witness needs an audit key (a chained log)");
    }
    if (request.durability != Durability::kStrict) {
      throw Error(ErrorCode::kInvalidArgument, request.path + ": buffered durability needs an audit key (a chained log)");
    }
    log.sink = FileSink::open(request.path);
    return log;
  }
  ChainOptions chain_options;
  chain_options.durability = request.durability;
  if (!request.witness_path.empty()) chain_options.witness = witness_file(request.witness_path);
  log.chain = ChainedFileSink::open(request.path, *keys, chain_options);
  log.sink = log.chain;
  log.pseudonym_key = derive_pseudonym_key(*keys);
  return log;
}

}  // namespace medinfer::audit
