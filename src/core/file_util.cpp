#include "core/file_util.hpp"

#include <medinfer/error.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <filesystem>

namespace medinfer::detail {

std::uint64_t checked_file_size(const std::string& path, std::uint64_t max_bytes, const char* limit_name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw Error(ErrorCode::kNotFound, path + ": no such file");
  if (!fs::is_regular_file(status)) throw Error(ErrorCode::kIo, path + ": not a regular file");
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorCode::kIo, path + ": cannot stat: " + ec.message());
  if (size > max_bytes) {
    throw Error(ErrorCode::kResourceLimit, path + ": " + std::to_string(size) + " bytes exceeds the limit of " +
                                               std::to_string(max_bytes) +
                                               (limit_name ? std::string(" (") + limit_name + ")" : std::string()));
  }
  return size;
}

std::string read_file(const std::string& path, std::uint64_t max_bytes) {
  const std::uint64_t size = checked_file_size(path, max_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) {
    throw Error(ErrorCode::kIo, path + ": short read (" + std::to_string(in.gcount()) + " of " +
                                    std::to_string(size) + " bytes)");
  }
  return bytes;
}

}  // namespace medinfer::detail
