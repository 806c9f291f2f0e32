// Reading a whole file with a size limit and errors that name the path.
#pragma once

#include <cstdint>
#include <string>

namespace medinfer::detail {

/// The size of a regular file. Throws kNotFound (no such file), kIo (not a regular file), or
/// kResourceLimit (larger than `max_bytes`; the message names `limit_name` when given).
std::uint64_t checked_file_size(const std::string& path, std::uint64_t max_bytes, const char* limit_name = nullptr);

/// Reads the first `n` bytes of the file into `dst`. Throws kIo (cannot open, short read).
void read_exactly(const std::string& path, void* dst, std::size_t n);

/// The file's bytes. Throws kNotFound (no such file), kIo (not a regular file, unreadable), or
/// kResourceLimit (larger than `max_bytes`).
std::string read_file(const std::string& path, std::uint64_t max_bytes);

}  // namespace medinfer::detail
