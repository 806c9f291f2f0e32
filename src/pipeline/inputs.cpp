// Inputs: the one value every host hands the library for a unit of work, resolved by one rule.
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>

#include <fmt/format.h>

#include <map>
#include <utility>

namespace medinfer {

Inputs::Inputs(const std::vector<std::string>& paths) {
  entries_.reserve(paths.size());
  for (const auto& p : paths) add(p);
}

Inputs::Inputs(std::vector<Input> inputs) : entries_(std::move(inputs)) {}

Inputs& Inputs::add(std::string path, int frame) {
  entries_.push_back(Input::file(std::move(path), frame));
  return *this;
}

Inputs& Inputs::add(Input input) {
  entries_.push_back(std::move(input));
  return *this;
}

namespace {

// "searched build/study (recursively, following symbolic links); 3 files skipped (kInvalidDicom: 2,
// kNotFound: 1; first: build/study/labels.csv: not DICOM ...)"
std::string what_was_searched(const ResolvedInputs& r, const dicom::FindOptions& find) {
  std::string dirs;
  for (const auto& d : r.searched) dirs += (dirs.empty() ? "" : ", ") + d;
  std::string out = fmt::format("searched {} ({}, {})", dirs, find.recursive ? "recursively" : "not recursively",
                                find.follow_symlinks ? "following symbolic links" : "not following symbolic links");
  if (r.skipped.empty()) return out + "; it holds no files";
  std::map<std::string, std::size_t> by_code;
  for (const auto& s : r.skipped) ++by_code[to_string(s.code)];
  std::string codes;
  for (const auto& [code, n] : by_code) codes += fmt::format("{}{}: {}", codes.empty() ? "" : ", ", code, n);
  return out + fmt::format("; {} file{} skipped ({}; first: {})", r.skipped.size(), r.skipped.size() == 1 ? "" : "s",
                           codes, r.skipped.front().reason);
}

}  // namespace

ResolvedInputs Inputs::resolve() const {
  if (entries_.empty()) throw Error(ErrorCode::kInvalidArgument, "no inputs (give files, directories, DICOM bytes or images)");
  ResolvedInputs out;
  out.inputs.reserve(entries_.size());
  for (const Input& entry : entries_) {
    if (entry.kind != Input::Kind::kPath) {
      out.inputs.push_back(entry);
      continue;
    }
    dicom::FoundFiles found = dicom::find_files({entry.path}, find);
    for (auto& f : found.files) {
      Input in = entry;
      in.path = std::move(f);
      out.inputs.push_back(std::move(in));
    }
    for (auto& s : found.skipped) out.skipped.push_back(std::move(s));
    for (auto& d : found.searched) out.searched.push_back(std::move(d));
  }
  if (out.inputs.empty()) throw Error(ErrorCode::kNotFound, "no DICOM files to read: " + what_was_searched(out, find));
  return out;
}

}  // namespace medinfer
