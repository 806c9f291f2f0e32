// Writing a file whole or not at all, for the hosts (CLI reports, medinfer-serve's SRs, the DICOM
// node's spool): a temporary file in the same folder, renamed into place, so a reader (a PACS importer
// watching the folder, a restart scanning the spool) sees the whole file or none of it.
#pragma once

#include <medinfer/error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace host {

[[noreturn]] inline void io_error(const std::string& what, const std::string& path, int err) {
  throw medinfer::Error(medinfer::ErrorCode::kIo, what + " " + path + ": " + std::strerror(err));
}

/// fsync a file or a folder; false on failure.
inline bool sync_path(const std::filesystem::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

/// Writes `bytes` to `path` through `.NAME.tmp.PID` beside it, renamed into place; with `durable`, the
/// file is fsync'd before and its folder after the rename (it survives a crash once this returns).
/// Throws medinfer::Error(kIo) naming the file and the reason; no temporary file is left behind.
inline void write_whole(const std::string& path, const std::string& bytes, bool durable = false) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string tmp =
      (target.parent_path() / ("." + target.filename().string() + ".tmp." + std::to_string(getpid()))).string();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) io_error("cannot create", tmp, errno);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      const int err = errno;
      std::remove(tmp.c_str());
      io_error("cannot write", tmp, err);
    }
  }
  if (durable && !sync_path(tmp, false)) {
    const int err = errno;
    std::remove(tmp.c_str());
    io_error("cannot sync", tmp, err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    io_error("cannot rename into place", path, err);
  }
  if (durable && !sync_path(target.parent_path().empty() ? fs::path(".") : target.parent_path(), true)) {
    io_error("cannot sync the folder of", path, errno);
  }
}

}  // namespace host
