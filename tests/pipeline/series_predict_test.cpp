// Pipeline::predict_series and predict_study: a 2D package aggregated over a series' slices (with the
// evidence slices), a 3D package on the series volume, and a study's series selected by the manifest.
// The "test-linear" backend makes every logit known, so each number is checked against an independent
// computation from the per-slice predict() results.
#include <medinfer/medinfer.hpp>

#include <catch2/catch.hpp>

#include "../support/linear_backend.hpp"
#include "../support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace medinfer;
using test::error_code_of;
using test::json;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kSlices = 12;
constexpr std::size_t kLesion = 7;  // the slice (along the normal) with the bright lesion

// A 64x64 slice: background around -24 HU, or a lesion slice around +176 HU; a small ramp so no input
// is constant.
test::DicomSpec slice_spec(std::size_t z, const std::string& series_uid, bool lesion) {
  test::DicomSpec s;
  s.rows = s.columns = 64;
  s.values.resize(64 * 64);
  for (std::size_t i = 0; i < s.values.size(); ++i) s.values[i] = (lesion ? 1200 : 1000) + static_cast<int>(i % 5);
  s.position = "-100\\-50\\" + std::to_string(2.5 * static_cast<double>(z));
  s.instance_number = static_cast<std::int32_t>(100 - z);  // not the geometric order
  s.study_uid = "1.2.826.0.1.3680043.8.498.1";
  s.series_uid = series_uid;
  s.sop_uid = series_uid + "." + std::to_string(z + 1);
  s.slice_thickness = "2.5";
  s.image_type = "ORIGINAL\\PRIMARY\\AXIAL";
  return s;
}

// kSlices slices of one series in `dir`, file names in neither geometric nor instance order, plus a
// localizer of the same series. Returns the files.
std::vector<std::string> write_series(const fs::path& dir, const std::string& series_uid = "1.2.826.0.1.3680043.8.498.2") {
  fs::create_directories(dir);
  std::vector<std::string> files;
  for (std::size_t z = 0; z < kSlices; ++z) {
    const fs::path f = dir / ("f" + std::to_string((z * 5) % kSlices) + ".dcm");
    test::write_dicom(f, slice_spec(z, series_uid, z == kLesion));
    files.push_back(f.string());
  }
  test::DicomSpec scout = slice_spec(0, series_uid, false);
  scout.orientation = "0\\1\\0\\0\\0\\-1";
  scout.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
  scout.sop_uid = series_uid + ".999";
  test::write_dicom(dir / "scout.dcm", scout);
  files.push_back((dir / "scout.dcm").string());
  return files;
}

test::PackageSpec linear_spec(json series = nullptr) {
  test::PackageSpec spec;
  spec.a = {2.0};
  spec.b = {-3.0};
  if (!series.is_null()) spec.extra = json{{"series", series}};
  return spec;
}

// predict() on each slice file, in geometric order (z = 0..kSlices-1).
std::vector<Result> per_slice(const Pipeline& p, const fs::path& dir) {
  std::vector<Result> out(kSlices);
  for (std::size_t z = 0; z < kSlices; ++z) out[z] = p.predict((dir / ("f" + std::to_string((z * 5) % kSlices) + ".dcm")).string());
  return out;
}

}  // namespace

TEST_CASE("predict_series: a 2D package's slices aggregate as the manifest says, with the evidence slices",
          "[pipeline][series]") {
  test::register_linear_backend();
  test::TempDir dir;
  const auto files = write_series(dir / "series");
  struct Case {
    json section;
    std::string aggregation;
  };
  for (const Case& c : {Case{nullptr, "max"}, Case{json{{"aggregation", "max"}, {"evidence_slices", 2}}, "max"},
                        Case{json{{"aggregation", "mean"}}, "mean"}, Case{json{{"aggregation", "noisy_or"}}, "noisy_or"},
                        Case{json{{"aggregation", "top_k_mean"}, {"k", 3}}, "top_k_mean"}}) {
    INFO(c.section.dump());
    test::Recorder recorder;
    PipelineOptions po;
    po.audit_sink = recorder.sink();
    po.include_identifiers = true;
    const Pipeline p = Pipeline::open(test::make_package(dir / ("pkg-" + c.aggregation + std::to_string(c.section.size())),
                                                         linear_spec(c.section)).string(), po);
    const std::vector<Result> slices = per_slice(p, dir / "series");
    std::vector<double> probs;
    for (const auto& r : slices) probs.push_back(r.probability);
    double want = 0.0;
    if (c.aggregation == "max") want = *std::max_element(probs.begin(), probs.end());
    if (c.aggregation == "mean") want = std::accumulate(probs.begin(), probs.end(), 0.0) / kSlices;
    if (c.aggregation == "noisy_or") {
      double none = 1.0;
      for (double q : probs) none *= 1.0 - q;
      want = 1.0 - none;
    }
    if (c.aggregation == "top_k_mean") {
      std::vector<double> sorted = probs;
      std::sort(sorted.rbegin(), sorted.rend());
      want = (sorted[0] + sorted[1] + sorted[2]) / 3.0;
    }
    const std::size_t records_before = recorder.records().size();
    const SeriesResult r = p.predict_series(files);
    CHECK(r.aggregation == c.aggregation);
    CHECK(r.slices == kSlices);  // the localizer left out
    CHECK(r.failed_slices == 0);
    CHECK(r.probability == Approx(want).epsilon(1e-12));
    CHECK(r.series_instance_uid == "1.2.826.0.1.3680043.8.498.2");
    CHECK(r.study_instance_uid == "1.2.826.0.1.3680043.8.498.1");
    CHECK(r.sop_instance_uid.empty());  // a series result names no one instance
    CHECK(slices[kLesion].sop_instance_uid == "1.2.826.0.1.3680043.8.498.2." + std::to_string(kLesion + 1));
    CHECK(slices[kLesion].series_instance_uid == r.series_instance_uid);
    CHECK(r.modality == "CT");
    const std::size_t evidence = c.section.is_object() && c.section.contains("evidence_slices") ? 2 : 3;
    REQUIRE(r.evidence.size() == evidence);
    CHECK(r.evidence[0].slice_index == kLesion);
    CHECK(r.evidence[0].sop_instance_uid == "1.2.826.0.1.3680043.8.498.2." + std::to_string(kLesion + 1));
    CHECK(r.evidence[0].probability == slices[kLesion].probability);
    CHECK(r.evidence[1].probability <= r.evidence[0].probability);
    CHECK(std::any_of(r.warnings.begin(), r.warnings.end(),
                      [](const dicom::SeriesWarning& w) { return w.kind == dicom::SeriesWarningKind::kLocalizer; }));
    // Audited: every slice, then the series result (study and series references, no instance).
    const auto records = recorder.records();
    REQUIRE(records.size() == records_before + kSlices + 1);
    const audit::Record& series_record = records.back();
    CHECK(series_record.series_ref == "1.2.826.0.1.3680043.8.498.2");
    CHECK(series_record.instance_ref.empty());
    CHECK_THAT(series_record.detail, Catch::Contains(c.aggregation + " over 12 slices"));
    CHECK(series_record.finding.probability == r.probability);
    // The JSON line carries the series fields.
    const json j = json::parse(to_json(r));
    CHECK(j.at("aggregation") == c.aggregation);
    CHECK(j.at("evidence").at(0).at("slice_index") == kLesion);
    CHECK(j.at("slices") == kSlices);
  }
}

TEST_CASE("predict_series: calibration of the aggregated score by the series' own calibrator", "[pipeline][series]") {
  test::register_linear_backend();
  test::TempDir dir;
  const auto files = write_series(dir / "series");
  const json calibration = {{"method", "platt"}, {"a", 1.7}, {"b", -0.4}};
  const Pipeline p = Pipeline::open(
      test::make_package(dir / "pkg", linear_spec({{"aggregation", "max"}, {"calibrate", "aggregate"}, {"calibration", calibration}}))
          .string());
  const std::vector<Result> slices = per_slice(p, dir / "series");
  double max_logit = -1e300;
  for (const auto& r : slices) max_logit = std::max(max_logit, r.raw_score);
  const double want = calibration::parse_calibration(calibration.dump())[0].apply(max_logit);
  const SeriesResult r = p.predict_series(files);
  CHECK(r.raw_score == Approx(max_logit).epsilon(1e-12));
  CHECK(r.probability == Approx(want).epsilon(1e-12));
}

TEST_CASE("predict_series: bad series sections are refused at open, naming the field", "[pipeline][series]") {
  test::register_linear_backend();
  test::TempDir dir;
  struct Bad {
    json section;
    std::string message;
  };
  int n = 0;
  for (const Bad& b : {Bad{{{"aggregation", "median"}}, "series.aggregation: 'median' is not"},
                       Bad{{{"aggregation", "top_k_mean"}}, "series.k: top_k_mean needs k"},
                       Bad{{{"aggregation", "max"}, {"k", 2}}, "series.k: only top_k_mean takes k"},
                       Bad{{{"evidence_slices", 100}}, "series.evidence_slices"},
                       Bad{{{"calibrate", "aggregate"}}, "series.calibration"},
                       Bad{{{"calibrate", "sometimes"}}, "series.calibrate"},
                       Bad{{{"aggregaton", "max"}}, "series.aggregaton: unknown field"}}) {
    INFO(b.section.dump());
    std::string msg;
    const fs::path pkg = test::make_package(dir / ("bad" + std::to_string(n++)), linear_spec(b.section));
    CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
    CHECK_THAT(msg, Catch::Contains(b.message));
  }
  test::PackageSpec selection = linear_spec();
  selection.extra = {{"series_selection", {{"any_of", json::array({json{{"orientation", {"diagonal"}}}})}}}};
  std::string msg;
  const fs::path pkg = test::make_package(dir / "bad-selection", selection);
  CHECK(error_code_of([&] { Pipeline::open(pkg.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("series_selection.any_of[0].orientation: 'diagonal'"));
}

TEST_CASE("predict_series: a 3D package runs once on the series volume", "[pipeline][series]") {
  test::register_linear_backend();
  test::TempDir dir;
  const auto files = write_series(dir / "series");
  test::PackageSpec spec = linear_spec();
  const json steps = json::array({json{{"step", "window"}, {"center", 40}, {"width", 400}},
                                  json{{"step", "resize"}, {"width", 32}, {"height", 32}, {"depth", 8}}});
  spec.extra = {{"input", {{"shape", {1, 1, 8, 32, 32}}, {"dtype", "float32"}}}, {"preprocessing", steps}};
  const Pipeline p = Pipeline::open(test::make_package(dir / "pkg3d", spec).string());
  const SeriesResult r = p.predict_series(files);
  CHECK(r.aggregation == "volume");
  CHECK(r.slices == kSlices);
  CHECK(r.evidence.empty());
  const dicom::SeriesVolume v = dicom::read_series(files);
  const Tensor t = preprocess::apply_volume(preprocess::parse_spec(steps.dump()), v.volume);
  REQUIRE(t.shape == std::vector<std::int64_t>{1, 1, 8, 32, 32});
  const double mean = std::accumulate(t.data.begin(), t.data.end(), 0.0) / static_cast<double>(t.data.size());
  const float logit = static_cast<float>(2.0 * mean - 3.0);
  CHECK(r.raw_score == Approx(logit).epsilon(1e-6));
  CHECK(r.probability == Approx(1.0 / (1.0 + std::exp(-static_cast<double>(logit)))).epsilon(1e-6));
  // One slice is not a series for a 3D package; a 3D package refuses single images.
  std::string msg;
  CHECK(error_code_of([&] { p.predict(files[0]); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("predict_series"));
  // A 3D package cannot declare a slice aggregation; a 2D one cannot have volume steps.
  spec.extra["series"] = {{"aggregation", "max"}};
  CHECK(error_code_of([&] { Pipeline::open(test::make_package(dir / "pkg3d-agg", spec).string()); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("series"));
  test::PackageSpec flat = linear_spec();
  flat.extra = {{"preprocessing", steps}};
  CHECK(error_code_of([&] { Pipeline::open(test::make_package(dir / "pkg2d-depth", flat).string()); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("volume steps in a 2D package"));
}

TEST_CASE("predict_study: the manifest's selection picks the axial CT; a localizer, a sagittal and an MR series are "
          "skipped with the reason", "[pipeline][series][study]") {
  test::register_linear_backend();
  test::TempDir dir;
  const fs::path study = dir / "study";
  write_series(study / "axial", "1.2.826.0.1.3680043.8.498.2");
  // A localizer alone in its own series.
  test::DicomSpec scout = slice_spec(0, "1.2.826.0.1.3680043.8.498.3", false);
  scout.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
  fs::create_directories(study / "scout");
  test::write_dicom(study / "scout" / "s.dcm", scout);
  // A sagittal reformat and an MR series.
  for (std::size_t z = 0; z < 4; ++z) {
    test::DicomSpec sag = slice_spec(z, "1.2.826.0.1.3680043.8.498.4", false);
    sag.orientation = "0\\1\\0\\0\\0\\-1";
    sag.position = std::to_string(2.5 * static_cast<double>(z)) + "\\-50\\20";
    fs::create_directories(study / "sag");
    test::write_dicom(study / "sag" / (std::to_string(z) + ".dcm"), sag);
    test::DicomSpec mr = slice_spec(z, "1.2.826.0.1.3680043.8.498.5", false);
    mr.modality = "MR";
    fs::create_directories(study / "mr");
    test::write_dicom(study / "mr" / (std::to_string(z) + ".dcm"), mr);
  }
  test::write_text(study / "README.txt", "not DICOM");
  test::PackageSpec spec = linear_spec();
  spec.extra = {{"series_selection",
                 {{"any_of", json::array({json{{"modality", {"CT"}}, {"orientation", {"axial"}}, {"slices", {5, 1000}}}})}}}};
  const Pipeline p = Pipeline::open(test::make_package(dir / "pkg", spec).string());
  const StudyResult r = p.predict_study(study.string());
  CHECK(r.study_instance_uid == "1.2.826.0.1.3680043.8.498.1");
  REQUIRE(r.series.size() == 1);
  CHECK(r.series[0].series_instance_uid == "1.2.826.0.1.3680043.8.498.2");
  CHECK(r.series[0].slices == kSlices);
  REQUIRE(r.skipped.size() == 3);
  auto reason = [&](const std::string& uid) {
    for (const auto& s : r.skipped) if (s.series_instance_uid == uid) return s.reason;
    return std::string("(not skipped)");
  };
  CHECK_THAT(reason("1.2.826.0.1.3680043.8.498.3"), Catch::Contains("only localizers"));
  CHECK_THAT(reason("1.2.826.0.1.3680043.8.498.4"), Catch::Contains("orientation sagittal is not axial"));
  CHECK_THAT(reason("1.2.826.0.1.3680043.8.498.5"), Catch::Contains("modality MR is not CT"));
  REQUIRE(r.skipped_files.size() == 1);
  CHECK_THAT(r.skipped_files[0].path, Catch::Contains("README.txt"));
  const json j = json::parse(to_json(r));
  CHECK(j.at("series").size() == 1);
  CHECK(j.at("skipped").size() == 3);
  // The same from a file list; files of two studies are refused.
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(study)) if (e.is_regular_file()) files.push_back(e.path().string());
  CHECK(p.predict_study(files).series.size() == 1);
  test::DicomSpec other = slice_spec(0, "1.2.826.0.1.3680043.8.498.9", false);
  other.study_uid = "1.2.826.0.1.3680043.8.498.8";
  test::write_dicom(study / "other-study.dcm", other);
  std::string msg;
  CHECK(error_code_of([&] { p.predict_study(study.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("2 studies"));
  // predict_series on a directory of several series says so.
  CHECK(error_code_of([&] { p.predict_series(study.string()); }, &msg) == ErrorCode::kInvalidArgument);
  CHECK(p.predict_series((study / "axial").string()).slices == kSlices);
}
