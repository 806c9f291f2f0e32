#include "report/report_content.hpp"

#include <medinfer/error.hpp>

#include "core/sha256.hpp"

#include <fmt/format.h>

#include <ctime>

namespace medinfer::report::detail {

namespace {

void require_study(const std::string& study_uid) {
  if (study_uid.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "the result has no Study Instance UID (an image given as pixels): a report could not be filed with "
                "its study");
  }
}

bool has_operating_point(const Result& r, const Finding& f) { return !r.operating_point.empty() && f.label == r.label; }

// The group of one finding of a result (image or series), without its evidence.
Group group_of(const Result& r, const Finding& f, std::string method) {
  Group g;
  g.finding = f;
  g.study_instance_uid = r.study_instance_uid;
  g.series_instance_uid = r.series_instance_uid;
  g.sop_instance_uid = r.sop_instance_uid;
  if (has_operating_point(r, f)) g.operating_point = r.operating_point;
  g.model = r.model;
  g.arm = r.arm;
  g.method = std::move(method);
  return g;
}

void add_series(Content& c, const SeriesResult& s) {
  const std::string method = s.aggregation == "volume"
                                 ? fmt::format("volume of {} slices", s.slices)
                                 : fmt::format("{} over {} slices ({} failed)", s.aggregation, s.slices, s.failed_slices);
  for (const Finding& f : s.findings) {
    Group g = group_of(s, f, method);
    g.modality = s.modality;
    for (const SeriesResult::Evidence& e : s.evidence) {
      if (e.label == f.label) g.evidence.emplace_back(e.sop_instance_uid, e.probability);
    }
    c.groups.push_back(std::move(g));
  }
  c.series_instance_uids.push_back(s.series_instance_uid);
}

}  // namespace

Content content_of(const Result& r) {
  require_study(r.study_instance_uid);
  Content c;
  c.study_instance_uid = r.study_instance_uid;
  for (const Finding& f : r.findings) {
    Group g = group_of(r, f, "one image");
    if (!r.sop_instance_uid.empty()) g.evidence.emplace_back(r.sop_instance_uid, f.probability);
    c.groups.push_back(std::move(g));
  }
  c.series_instance_uids.push_back(r.series_instance_uid);
  return c;
}

Content content_of(const SeriesResult& r) {
  require_study(r.study_instance_uid);
  Content c;
  c.study_instance_uid = r.study_instance_uid;
  add_series(c, r);
  return c;
}

Content content_of(const StudyResult& r) {
  require_study(r.study_instance_uid);
  if (r.series.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "the study result has no predicted series (every series was skipped or failed): nothing to report");
  }
  Content c;
  c.study_instance_uid = r.study_instance_uid;
  for (const SeriesResult& s : r.series) add_series(c, s);
  return c;
}

Code private_code(const std::string& prefix, const std::string& name) {
  std::string value = prefix + name;
  // Code Value is SH (16 characters, no backslash or control characters): a longer or odd name is
  // named by a hash of it; the meaning (LO, 64) keeps the name.
  bool plain = value.size() <= 16;
  for (char ch : value) plain = plain && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) < 0x7f;
  if (!plain) value = prefix + medinfer::detail::sha256_hex(name).substr(0, 16 - prefix.size());
  std::string meaning = name;
  if (meaning.size() > 64) {
    std::size_t cut = 61;
    while (cut > 0 && (static_cast<unsigned char>(meaning[cut]) & 0xC0) == 0x80) --cut;  // a UTF-8 boundary
    meaning = meaning.substr(0, cut) + "...";
  }
  return {value, kPrivateScheme, meaning};
}

Code label_code(const std::string& label, const ReportOptions& options) {
  const auto it = options.label_codes.find(label);
  if (it != options.label_codes.end() && !it->second.empty()) {
    return {it->second.code_value, it->second.coding_scheme, it->second.code_meaning};
  }
  return private_code("L-", label);
}

Now now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char date[16], time[16], iso[32];
  std::strftime(date, sizeof date, "%Y%m%d", &tm);
  std::strftime(time, sizeof time, "%H%M%S", &tm);
  std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {date, time, iso};
}

}  // namespace medinfer::report::detail
