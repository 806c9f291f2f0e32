// Series: directory scanning and volume assembly (shuffled files, gaps, duplicates, tilt, localizers).
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/series.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <random>

using namespace medinfer;
using test::DicomSpec;
using test::error_code_of;

namespace {

const std::string kSeries = "1.2.826.0.1.3680043.9.7777.100";
const std::string kStudy = "1.2.826.0.1.3680043.9.7777.1";

std::string fmt_position(double x, double y, double z) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.4f\\%.4f\\%.4f", x, y, z);
  return buf;
}

// Slice k of an axial series: every pixel holds 10 * k (HU after intercept -1024: 10k - 1024).
DicomSpec slice_spec(int k, double x, double y, double z, std::int32_t instance_number) {
  DicomSpec s;
  s.rows = 6;
  s.columns = 5;
  s.pixel_signed = false;
  s.study_uid = kStudy;
  s.series_uid = kSeries;
  s.instance_number = instance_number;
  s.position = fmt_position(x, y, z);
  s.values.assign(30, 10 * k);
  return s;
}

}  // namespace

namespace {

// Writes n slices 2.5 mm apart in a shuffled order with shuffled instance numbers; returns the paths.
std::vector<std::string> write_series(const test::TempDir& dir, int n, const std::vector<int>& skip = {},
                                      double tilt_y_per_slice = 0.0) {
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) order[static_cast<std::size_t>(k)] = k;
  std::mt19937 rng(5);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int k = order[i];
    if (std::find(skip.begin(), skip.end(), k) != skip.end()) continue;
    // Instance numbers deliberately disagree with positions: sorting must use the positions.
    const DicomSpec s = slice_spec(k, -50.0, -60.0 + tilt_y_per_slice * k, 100.0 + 2.5 * k, static_cast<int>(100 - i));
    const auto path = dir / ("img" + std::to_string(i) + ".dcm");
    test::write_dicom(path, s);
    paths.push_back(path.string());
  }
  return paths;
}

std::vector<float> slice_values(const dicom::SeriesVolume& v) {
  std::vector<float> first;
  const auto* p = static_cast<const float*>(v.volume.data());
  for (std::size_t z = 0; z < v.volume.depth(); ++z) first.push_back(p[z * v.volume.width() * v.volume.height()]);
  return first;
}

bool has_warning(const dicom::SeriesVolume& v, const std::string& kind) {
  return std::any_of(v.warnings.begin(), v.warnings.end(), [&](const auto& w) { return dicom::to_string(w.kind) == kind; });
}

}  // namespace

TEST_CASE("a shuffled series is sorted by position along the normal, with spacing from the positions",
          "[dicom][series]") {
  test::TempDir dir;
  const auto files = write_series(dir, 12);
  dicom::SeriesOptions strict;
  strict.strict = true;
  const auto v = dicom::read_series(files, strict);
  CHECK(v.warnings.empty());
  REQUIRE(v.volume.depth() == 12);
  CHECK(v.volume.width() == 5);
  CHECK(v.volume.height() == 6);
  CHECK(v.volume.spacing()[2] == Approx(2.5));
  CHECK(v.volume.spacing()[0] == Approx(0.75));  // column spacing (PixelSpacing 0.5\0.75)
  CHECK(v.volume.origin()[2] == Approx(100.0));
  const auto values = slice_values(v);
  for (int k = 0; k < 12; ++k) CHECK(values[static_cast<std::size_t>(k)] == Approx(10.0 * k - 1024.0));
  const Image s3 = v.volume.slice(3);
  CHECK(s3.origin()[2] == Approx(107.5));
  // Single-threaded decoding gives the same volume.
  strict.threads = 1;
  const auto v1 = dicom::read_series(files, strict);
  CHECK(std::equal(static_cast<const std::uint8_t*>(v.volume.data()),
                   static_cast<const std::uint8_t*>(v.volume.data()) + v.volume.size_bytes(),
                   static_cast<const std::uint8_t*>(v1.volume.data())));
}

TEST_CASE("gaps, duplicates, tilted gantries, localizers and strays: warnings when tolerant, errors when strict",
          "[dicom][series]") {
  test::TempDir dir;
  dicom::SeriesOptions strict;
  strict.strict = true;
  std::string msg;

  SECTION("gap") {
    const auto files = write_series(dir, 10, {4, 5});
    const auto v = dicom::read_series(files);
    CHECK(v.volume.depth() == 8);
    CHECK(has_warning(v, "gap"));
    CHECK(v.volume.spacing()[2] == Approx(2.5));
    CHECK(error_code_of([&] { dicom::read_series(files, strict); }, &msg) == ErrorCode::kInvalidDicom);
    CHECK_THAT(msg, Catch::Contains("gap"));
  }
  SECTION("duplicate position") {
    auto files = write_series(dir, 6);
    DicomSpec dup = slice_spec(2, -50, -60, 105.0, 500);
    dup.values.assign(30, 999);
    test::write_dicom(dir / "dup.dcm", dup);
    files.push_back((dir / "dup.dcm").string());
    const auto v = dicom::read_series(files);
    CHECK(v.volume.depth() == 6);
    CHECK(has_warning(v, "duplicate_position"));
    CHECK(slice_values(v)[2] == Approx(20.0 - 1024.0));  // the lower InstanceNumber wins
    CHECK(error_code_of([&] { dicom::read_series(files, strict); }, &msg) == ErrorCode::kInvalidDicom);
    CHECK_THAT(msg, Catch::Contains("duplicate_position"));
  }
  SECTION("tilted gantry") {
    const auto files = write_series(dir, 8, {}, 0.5);
    const auto v = dicom::read_series(files);
    CHECK(v.volume.depth() == 8);
    CHECK(has_warning(v, "tilted_gantry"));
    const double step = std::sqrt(0.25 + 6.25);
    CHECK(v.volume.spacing()[2] == Approx(step));
    CHECK(v.volume.direction()[7] == Approx(0.5 / step));
    CHECK(v.volume.direction()[8] == Approx(2.5 / step));
    CHECK(v.volume.slice(7).origin()[1] == Approx(-60.0 + 3.5));
    CHECK(error_code_of([&] { dicom::read_series(files, strict); }) == ErrorCode::kInvalidDicom);
  }
  SECTION("localizer and a stray size") {
    auto files = write_series(dir, 5);
    DicomSpec loc = slice_spec(0, 0, 0, 0, 1);
    loc.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
    loc.orientation = "0\\1\\0\\0\\0\\-1";
    test::write_dicom(dir / "loc.dcm", loc);
    DicomSpec sag = slice_spec(0, 0, 0, 0, 2);
    sag.orientation = "0\\1\\0\\0\\0\\-1";  // not flagged LOCALIZER, but not axial like the rest
    test::write_dicom(dir / "sag.dcm", sag);
    DicomSpec big = slice_spec(0, -50, -60, 200, 3);
    big.rows = 7;
    big.values.assign(35, 0);
    test::write_dicom(dir / "big.dcm", big);
    for (const char* f : {"loc.dcm", "sag.dcm", "big.dcm"}) files.push_back((dir / f).string());
    const auto v = dicom::read_series(files);
    CHECK(v.volume.depth() == 5);
    CHECK(has_warning(v, "localizer"));
    CHECK(has_warning(v, "mixed_orientation"));
    CHECK(has_warning(v, "mixed_size"));
    CHECK(std::none_of(v.files.begin(), v.files.end(), [](const std::string& f) {
      return f.find("loc.dcm") != std::string::npos || f.find("big.dcm") != std::string::npos;
    }));
    CHECK(error_code_of([&] { dicom::read_series(files, strict); }, &msg) == ErrorCode::kInvalidDicom);
    CHECK_THAT(msg, Catch::Contains("localizer"));
  }
  SECTION("an unreadable file") {
    auto files = write_series(dir, 4);
    test::write_text(dir / "junk.dcm", "not dicom at all, just text");
    files.push_back((dir / "junk.dcm").string());
    const auto v = dicom::read_series(files);
    CHECK(v.volume.depth() == 4);
    CHECK(has_warning(v, "unreadable"));
    CHECK(error_code_of([&] { dicom::read_series(files, strict); }) == ErrorCode::kInvalidDicom);
  }
  CHECK(error_code_of([&] { dicom::read_series(std::vector<std::string>{}); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("scan_directory indexes studies and series and says why it skipped each other file", "[dicom][series]") {
  test::TempDir dir;
  test::fs::create_directories(dir / "a" / "b");
  for (int k = 0; k < 3; ++k) test::write_dicom(dir / "a" / ("s1_" + std::to_string(k) + ".dcm"), slice_spec(k, 0, 0, k, k));
  for (int k = 0; k < 2; ++k) {
    DicomSpec s = slice_spec(k, 0, 0, k, k);
    s.series_uid = kSeries + ".2";
    test::write_dicom(dir / "a" / "b" / ("s2_" + std::to_string(k) + ".dcm"), s);
  }
  test::write_text(dir / "README.txt", "hello");
  test::write_text(dir / "a" / "DICOMDIR", "whatever is inside");
  DicomSpec nopix = slice_spec(0, 0, 0, 0, 1);
  nopix.pixel_data = false;
  test::write_dicom(dir / "report.dcm", nopix);

  const auto index = dicom::scan_directory(dir.path().string());
  CHECK(index.files_seen == 8);
  REQUIRE(index.studies.size() == 1);
  CHECK(index.studies[0].study_instance_uid == kStudy);
  REQUIRE(index.studies[0].series.size() == 2);
  std::vector<std::size_t> counts;
  for (const auto& s : index.studies[0].series) counts.push_back(s.instances.size());
  std::sort(counts.begin(), counts.end());
  CHECK(counts == std::vector<std::size_t>{2, 3});
  REQUIRE(index.skipped.size() == 3);
  for (const auto& sk : index.skipped) {
    INFO(sk.path << ": " << sk.reason);
    if (sk.path.find("README") != std::string::npos) CHECK_THAT(sk.reason, Catch::Contains("not DICOM"));
    if (sk.path.find("DICOMDIR") != std::string::npos) CHECK_THAT(sk.reason, Catch::Contains("DICOMDIR"));
    if (sk.path.find("report") != std::string::npos) CHECK_THAT(sk.reason, Catch::Contains("not an image"));
  }
  const auto* series3 = &index.studies[0].series[0];
  if (series3->instances.size() != 3) series3 = &index.studies[0].series[1];
  const auto v = dicom::read_series(*series3);
  CHECK(v.volume.depth() == 3);
  CHECK(error_code_of([&] { dicom::scan_directory((dir / "nope").string()); }) == ErrorCode::kNotFound);
}

TEST_CASE("find_files: one rule for a folder's files (recursive, links followed once, non-DICOM skipped)", "[dicom][series]") {
  test::TempDir dir, outside;
  const test::fs::path root = dir / "study";
  test::fs::create_directories(root / "s1");
  test::fs::create_directories(root / "deep" / "s2");
  for (int k = 0; k < 3; ++k) test::write_dicom(root / "s1" / ("i" + std::to_string(k)), slice_spec(k, 0, 0, k, k));
  for (int k = 0; k < 2; ++k) test::write_dicom(root / "deep" / "s2" / ("i" + std::to_string(k) + ".dcm"), slice_spec(k, 0, 0, k, k));
  test::fs::create_directories(outside / "s3");
  for (int k = 0; k < 2; ++k) test::write_dicom(outside / "s3" / ("i" + std::to_string(k) + ".dcm"), slice_spec(k, 0, 0, k, k));
  test::write_text(root / "labels.csv", "file,label\na,1\n");
  test::write_dicom(root / "top.dcm", slice_spec(0, 0, 0, 0, 1));
  test::fs::create_directory_symlink(outside / "s3", root / "linked-series");  // a series elsewhere, linked in
  test::fs::create_directory_symlink(root, root / "deep" / "loop");           // a loop back to the top
  test::fs::create_symlink(root / "top.dcm", root / "second-name.dcm");       // a second name for one file
  test::fs::create_symlink(root / "gone.dcm", root / "broken.dcm");           // a link to nothing

  const dicom::FoundFiles found = dicom::find_files({root.string()});
  CHECK(found.searched == std::vector<std::string>{root.string()});
  CHECK(found.files.size() == 3 + 2 + 2 + 1);  // the linked series found, the loop searched once, top.dcm once
  CHECK(std::is_sorted(found.files.begin(), found.files.end()));
  std::map<std::string, std::string> skipped;
  for (const auto& s : found.skipped) skipped[test::fs::path(s.path).filename().string()] = s.reason;
  CHECK_THAT(skipped["labels.csv"], Catch::Contains("not DICOM"));
  CHECK_THAT(skipped["broken.dcm"], Catch::Contains("broken symbolic link"));
  CHECK_THAT(skipped["loop"], Catch::Contains("already searched"));

  dicom::FindOptions flat;
  flat.recursive = false;
  CHECK(dicom::find_files({root.string()}, flat).files.size() == 1);  // top.dcm (its second name is the same file)

  dicom::FindOptions no_links;
  no_links.follow_symlinks = false;
  const auto unlinked = dicom::find_files({root.string()}, no_links);
  CHECK(unlinked.files.size() == 3 + 2 + 1);
  CHECK(std::count_if(unlinked.skipped.begin(), unlinked.skipped.end(),
                      [](const dicom::SkippedFile& s) { return s.reason.find("not followed") != std::string::npos; }) == 4);

  dicom::FindOptions few;
  few.max_files = 4;
  CHECK(error_code_of([&] { dicom::find_files({root.string()}, few); }) == ErrorCode::kResourceLimit);

  // A file given by name is kept as given (its reader says what it is), a missing one too.
  const auto given = dicom::find_files({(root / "labels.csv").string(), (root / "nope.dcm").string()});
  CHECK(given.files.size() == 2);
  CHECK(given.skipped.empty());

  // scan_files / scan_directory use the same rule: the linked series is indexed too.
  const auto index = dicom::scan_directory(root.string());
  std::size_t instances = 0;
  for (const auto& study : index.studies) {
    for (const auto& s : study.series) instances += s.instances.size();
  }
  CHECK(instances == 3 + 2 + 2 + 1);

  const std::string preamble(128, '\0');
  CHECK(dicom::looks_like_dicom(reinterpret_cast<const std::uint8_t*>((preamble + "DICM").data()), 132));
  CHECK_FALSE(dicom::looks_like_dicom(reinterpret_cast<const std::uint8_t*>("file,label\na,1\n"), 15));
  CHECK(error_code_of([&] { dicom::looks_like_dicom((root / "nope.dcm").string()); }) == ErrorCode::kNotFound);
}

TEST_CASE("Inputs::resolve: folders by the one rule, other inputs as given, nothing found names what was searched", "[dicom][series]") {
  test::TempDir dir;
  test::fs::create_directories(dir / "empty");
  test::fs::create_directories(dir / "only-folders" / "a" / "b");
  test::fs::create_directories(dir / "notes");
  test::write_text(dir / "notes" / "labels.csv", "x");
  test::fs::create_directories(dir / "study" / "s1");
  for (int k = 0; k < 2; ++k) test::write_dicom(dir / "study" / "s1" / ("i" + std::to_string(k) + ".dcm"), slice_spec(k, 0, 0, k, k));
  test::write_text(dir / "study" / "labels.csv", "x");

  CHECK(error_code_of([] { Inputs{}.resolve(); }) == ErrorCode::kInvalidArgument);
  for (const char* name : {"empty", "only-folders", "notes"}) {
    const std::string folder = (dir / name).string();
    try {
      Inputs(std::vector<std::string>{folder}).resolve();
      FAIL("resolved " << folder);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kNotFound);
      CHECK_THAT(e.what(), Catch::Contains(folder) && Catch::Contains("recursively"));
      if (std::string(name) == "notes") CHECK_THAT(e.what(), Catch::Contains("1 file skipped") && Catch::Contains("labels.csv"));
    }
  }
  auto bytes = std::make_shared<const std::string>("DICM?");
  Inputs inputs;
  inputs.add(Input::dicom(bytes, "upload"));
  inputs.add((dir / "study").string());
  inputs.add((dir / "missing.dcm").string());
  const ResolvedInputs r = inputs.resolve();
  REQUIRE(r.inputs.size() == 4);
  CHECK(r.inputs[0].kind == Input::Kind::kDicomBytes);
  CHECK(r.inputs[0].bytes == bytes);  // shared, not copied
  CHECK(test::fs::path(r.inputs[1].path).filename() == "i0.dcm");
  CHECK(test::fs::path(r.inputs[2].path).filename() == "i1.dcm");
  CHECK(test::fs::path(r.inputs[3].path).filename() == "missing.dcm");  // kept: its reader says it is missing
  REQUIRE(r.skipped.size() == 1);
  CHECK(test::fs::path(r.skipped[0].path).filename() == "labels.csv");
  CHECK(r.searched == std::vector<std::string>{(dir / "study").string()});
  Inputs flat(std::vector<std::string>{(dir / "study").string()});
  flat.find.recursive = false;
  CHECK(error_code_of([&] { flat.resolve(); }) == ErrorCode::kNotFound);
}
