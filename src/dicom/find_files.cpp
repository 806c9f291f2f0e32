// The library's one rule for "a directory's files": find_files (recursive by default, links followed
// with loop protection, non-DICOM files skipped and listed, a limit on the count).
#include <medinfer/error.hpp>
#include <medinfer/series.hpp>

#include "dicom/dicom_parse.hpp"

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

namespace medinfer::dicom {

namespace fs = std::filesystem;

bool looks_like_dicom(const std::uint8_t* data, std::size_t size) noexcept { return detail::plausible_start(data, size); }

bool looks_like_dicom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(ErrorCode::kNotFound, path + ": no such file");
    throw Error(ErrorCode::kIo, path + ": cannot be opened: " + std::strerror(errno));
  }
  std::uint8_t head[132] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  return looks_like_dicom(head, static_cast<std::size_t>(in.gcount()));
}

namespace {

using Identity = std::pair<dev_t, ino_t>;

class Finder {
 public:
  Finder(const FindOptions& options, FoundFiles& out) : options_(options), out_(out) {}

  void directory(const std::string& root) {
    out_.searched.push_back(root);
    std::vector<std::string> files;
    visit(root, files);
    std::sort(files.begin(), files.end());
    for (auto& f : files) out_.files.push_back(std::move(f));
  }

 private:
  void skip(const std::string& path, ErrorCode code, std::string reason) {
    out_.skipped.push_back({path, code, std::move(reason)});
  }

  // Appends the DICOM files under `dir` to `files`.
  void visit(const std::string& dir, std::vector<std::string>& files) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return skip(dir, ErrorCode::kIo, dir + ": cannot be read: " + std::strerror(errno));
    if (!dirs_.insert({st.st_dev, st.st_ino}).second) {
      return skip(dir, ErrorCode::kInvalidArgument, dir + ": a folder already searched (a symbolic link loop or a second link to it)");
    }
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    if (ec) return skip(dir, ErrorCode::kIo, dir + ": cannot be read: " + ec.message());
    std::vector<std::string> subdirs;
    for (; it != end; it.increment(ec)) {
      if (ec) return skip(dir, ErrorCode::kIo, dir + ": cannot be read: " + ec.message());
      const std::string path = it->path().string();
      std::error_code lec;
      const bool link = it->is_symlink(lec);
      if (link && !options_.follow_symlinks) {
        skip(path, ErrorCode::kInvalidArgument, path + ": a symbolic link (not followed)");
        continue;
      }
      struct stat target {};
      if (::stat(path.c_str(), &target) != 0) {
        skip(path, link ? ErrorCode::kNotFound : ErrorCode::kIo,
             path + (link ? ": a broken symbolic link" : std::string(": cannot be read: ") + std::strerror(errno)));
        continue;
      }
      if (S_ISDIR(target.st_mode)) {
        if (options_.recursive) subdirs.push_back(path);
        continue;
      }
      if (!S_ISREG(target.st_mode)) {
        skip(path, ErrorCode::kInvalidArgument, path + ": not a regular file");
        continue;
      }
      if (!files_.insert({target.st_dev, target.st_ino}).second) continue;  // reached before: listed once
      if (it->path().filename() == "DICOMDIR") {
        skip(path, ErrorCode::kInvalidDicom, path + ": a DICOMDIR (media directory), not an image");
        continue;
      }
      bool dicom = true;
      try {
        dicom = looks_like_dicom(path);
      } catch (const Error&) {
        dicom = true;  // cannot be opened: its reader reports why
      }
      if (!dicom) {
        skip(path, ErrorCode::kInvalidDicom, path + ": not DICOM (no 'DICM' marker at byte 128 and no dataset at the start)");
        continue;
      }
      if (++count_ > options_.max_files) {
        throw Error(ErrorCode::kResourceLimit,
                    fmt::format("{}: more than {} files (FindOptions::max_files)", dir, options_.max_files));
      }
      files.push_back(path);
    }
    for (const auto& sub : subdirs) visit(sub, files);
  }

  const FindOptions& options_;
  FoundFiles& out_;
  std::set<Identity> dirs_, files_;
  std::size_t count_ = 0;
};

}  // namespace

FoundFiles find_files(const std::vector<std::string>& paths, const FindOptions& options) {
  FoundFiles out;
  Finder finder(options, out);
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      finder.directory(p);
    } else {
      out.files.push_back(p);  // a file, or a path that does not exist: its reader says which
    }
  }
  return out;
}

}  // namespace medinfer::dicom
