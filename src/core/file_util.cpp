#include "core/file_util.hpp"

#include <medinfer/error.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <system_error>
#include <filesystem>

namespace medinfer::detail {

std::uint64_t checked_file_size(const std::string& path, std::uint64_t max_bytes, const char* limit_name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec == std::errc::too_many_symbolic_link_levels) {
    throw Error(ErrorCode::kIo, path + ": a loop of symbolic links, not a file");
  }
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
    throw Error(ErrorCode::kIo, path + ": cannot stat: " + ec.message());
  }
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

void read_exactly(const std::string& path, void* dst, std::size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  auto* out = static_cast<char*>(dst);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCode::kIo, path + ": short read (" + std::to_string(got) + " of " + std::to_string(n) +
                                      " bytes)" + (r < 0 ? std::string(": ") + std::strerror(err) : std::string()));
    }
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
}

std::string read_file(const std::string& path, std::uint64_t max_bytes) {
  const std::uint64_t size = checked_file_size(path, max_bytes);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  read_exactly(path, bytes.data(), bytes.size());
  return bytes;
}

}  // namespace medinfer::detail
