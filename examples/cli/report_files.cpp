#include "report_files.hpp"

#include "../common/files.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;

void prove_writable(const std::string& option, const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw medinfer::Error(medinfer::ErrorCode::kIo, option + " " + dir + ": not a folder that can be created (" +
                                                        (ec ? ec.message() : "it is a file") + ")");
  }
  const std::string probe = (fs::path(dir) / (".medinfer-probe." + std::to_string(getpid()))).string();
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) {
    throw medinfer::Error(medinfer::ErrorCode::kIo, option + " " + dir + ": cannot write there (" +
                                                        std::strerror(errno) + ")");
  }
  std::fclose(f);
  std::remove(probe.c_str());
}

// A UID is digits and dots; anything else a header might hold (a slash, "..") is replaced, so a report
// never lands outside its folder.
std::string file_name(std::string key, const char* suffix) {
  for (char& c : key) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-';
    if (!ok) c = '_';
  }
  if (key.empty() || key.front() == '.') key = "_" + key;
  return key.substr(0, 200) + suffix;
}

}  // namespace

ReportFiles::ReportFiles(std::string sr_dir, std::string fhir_dir, medinfer::report::ReportOptions options)
    : sr_dir_(std::move(sr_dir)), fhir_dir_(std::move(fhir_dir)), options_(std::move(options)) {
  prove_writable("--sr", sr_dir_);
  prove_writable("--fhir", fhir_dir_);
}

template <class R>
void ReportFiles::write_any(const R& r, const std::string& key, const std::vector<std::string>& sources, Json& line) const {
  // Both reports are made before either is written: a report that cannot be made leaves no file.
  std::string sr_bytes, fhir_text;
  if (!sr_dir_.empty()) sr_bytes = medinfer::report::structured_report(r, sources, options_).bytes;
  if (!fhir_dir_.empty()) fhir_text = medinfer::report::fhir_bundle(r, options_) + "\n";
  if (!sr_dir_.empty()) {
    const std::string path = (fs::path(sr_dir_) / file_name(key, ".sr.dcm")).string();
    host::write_whole(path, sr_bytes);
    line["sr"] = path;
  }
  if (!fhir_dir_.empty()) {
    const std::string path = (fs::path(fhir_dir_) / file_name(key, ".fhir.json")).string();
    host::write_whole(path, fhir_text);
    line["fhir"] = path;
  }
}

void ReportFiles::write(const medinfer::Result& r, const std::vector<std::string>& sources, Json& line) const {
  write_any(r, r.sop_instance_uid.empty() ? r.input_sha256 : r.sop_instance_uid, sources, line);
}
void ReportFiles::write(const medinfer::SeriesResult& r, const std::vector<std::string>& sources, Json& line) const {
  write_any(r, r.series_instance_uid, sources, line);
}
void ReportFiles::write(const medinfer::StudyResult& r, const std::vector<std::string>& sources, Json& line) const {
  write_any(r, r.study_instance_uid, sources, line);
}
