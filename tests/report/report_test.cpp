// report::structured_report and fhir_bundle through the public API: the SR read back with DCMTK's own
// SR reader (dcmsr), the Bundle with nlohmann-json; the label codes from the manifest; every bad input.
#include <medinfer/medinfer.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace medinfer;
using test::error_code_of;
namespace fs = std::filesystem;

namespace {

test::DicomSpec ct(const std::string& study, const std::string& series, const std::string& sop, int base) {
  test::DicomSpec s;
  s.rows = s.columns = 64;
  s.values.resize(64 * 64);
  for (std::size_t i = 0; i < s.values.size(); ++i) s.values[i] = base + static_cast<int>(i % 7);
  s.study_uid = study;
  s.series_uid = series;
  s.sop_uid = sop;
  return s;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Every NUM and CODE of the SR's measurement groups: concept meaning -> value text.
std::map<std::string, std::string> group_values(const fs::path& path) {
  DcmFileFormat file;
  REQUIRE(file.loadFile(path.c_str()).good());
  DSRDocument doc;
  REQUIRE(doc.read(*file.getDataset()).good());
  std::map<std::string, std::string> out;
  DSRDocumentTree& tree = doc.getTree();
  if (tree.gotoRoot() == 0) return out;
  do {
    const DSRContentItem& item = tree.getCurrentContentItem();
    const std::string name = item.getConceptName().getCodeMeaning().c_str();
    if (item.getValueType() == DSRTypes::VT_Num) {
      out[name] = item.getNumericValue().getNumericValue().c_str();
      out[name + " unit"] = item.getNumericValue().getMeasurementUnit().getCodeValue().c_str();
    } else if (item.getValueType() == DSRTypes::VT_Code) {
      const DSRCodedEntryValue& c = item.getCodeValue();
      out[name] = std::string(c.getCodeValue().c_str()) + "|" + c.getCodingSchemeDesignator().c_str() + "|" +
                  c.getCodeMeaning().c_str();
    }
  } while (tree.iterate() != 0);
  return out;
}

}  // namespace

TEST_CASE("report: an image result as SR (read back by DCMTK) and FHIR, with the manifest's label code",
          "[report]") {
  test::TempDir dir;
  const fs::path pkg = test::copy_demo_package(dir.path());
  auto m = nlohmann::json::parse(test::read_text(pkg / "manifest.json"));
  m["labels"] = {{{"name", "lesion"}, {"code_value", "52988006"}, {"coding_scheme", "SCT"}, {"code_meaning", "Lesion"}}};
  test::write_text(pkg / "manifest.json", m.dump());
  const std::string study = "1.2.826.0.1.3680043.8.498.16", series = study + ".1";
  test::write_dicom(dir / "a.dcm", ct(study, series, series + ".1", 1200));
  const Pipeline p = Pipeline::open(pkg.string());
  REQUIRE(p.package()->label_codes().at(0).code_value == "52988006");
  const Result r = p.predict((dir / "a.dcm").string());
  report::ReportOptions ro;
  ro.label_codes = report::label_codes(*p.package());
  const report::StructuredReport sr = report::structured_report(r, {(dir / "a.dcm").string()}, ro);
  CHECK(sr.study_instance_uid == study);
  CHECK(sr.series_instance_uid.rfind("2.25.", 0) == 0);
  CHECK(sr.sop_instance_uid != sr.series_instance_uid);
  write_bytes(dir / "a.sr.dcm", sr.bytes);
  const dicom::ImageHeader h = dicom::read_header((dir / "a.sr.dcm").string());
  CHECK(h.modality == "SR");
  CHECK_FALSE(h.has_pixel_data);
  CHECK(h.study_instance_uid == study);
  CHECK(h.sop_instance_uid == sr.sop_instance_uid);
  CHECK(error_code_of([&] { dicom::read_instance((dir / "a.sr.dcm").string()); }) == ErrorCode::kInvalidDicom);
  const auto values = group_values(dir / "a.sr.dcm");
  CHECK(values.at("Finding") == "52988006|SCT|Lesion");
  CHECK(std::stod(values.at("Calibrated probability")) == Approx(r.probability).epsilon(1e-12));
  CHECK(values.at("Calibrated probability unit") == "{probability}");
  CHECK(values.at("Escalation recommended") == (r.escalate ? "373066001|SCT|Yes" : "373067005|SCT|No"));

  const auto bundle = nlohmann::json::parse(report::fhir_bundle(r, ro));
  CHECK(bundle["resourceType"] == "Bundle");
  int observations = 0;
  for (const auto& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] != "Observation") continue;
    ++observations;
    CHECK(e["resource"]["valueQuantity"]["value"].get<double>() == r.probability);  // exact round trip
    CHECK(e["resource"]["code"]["coding"][0]["code"] == "52988006");
    CHECK(e["resource"]["code"]["coding"][0]["system"] == "http://snomed.info/sct");
  }
  CHECK(observations == 1);
  ro.fhir_subject = "Patient/42";
  CHECK(nlohmann::json::parse(report::fhir_bundle(r, ro))["entry"][1]["resource"]["subject"]["reference"] == "Patient/42");
}

TEST_CASE("report: bad inputs are refused with the reason", "[report]") {
  test::TempDir dir;
  const std::string study = "1.2.826.0.1.3680043.8.498.17";
  test::write_dicom(dir / "a.dcm", ct(study, study + ".1", study + ".1.1", 1000));
  test::write_dicom(dir / "other.dcm", ct(study + "9", study + "9.1", study + "9.1.1", 1000));
  const Pipeline p = Pipeline::open(test::demo_model_dir().string());
  const Result r = p.predict((dir / "a.dcm").string());
  std::string msg;
  // an image given as pixels has no study to be filed with
  const Result pixels = p.predict(dicom::read_image((dir / "a.dcm").string()));
  CHECK(error_code_of([&] { report::structured_report(pixels, {(dir / "a.dcm").string()}); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("Study Instance UID"));
  CHECK(error_code_of([&] { report::fhir_bundle(pixels); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { report::structured_report(r, {(dir / "other.dcm").string()}); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("other.dcm") && Catch::Contains("another study"));
  CHECK(error_code_of([&] { report::structured_report(r, {}); }) == ErrorCode::kInvalidArgument);
  CHECK(error_code_of([&] { report::structured_report(r, {(dir / "missing.dcm").string()}); }) == ErrorCode::kNotFound);
  test::write_text(dir / "junk.dcm", "not DICOM");
  CHECK(error_code_of([&] { report::structured_report(r, {(dir / "junk.dcm").string()}); }) == ErrorCode::kInvalidDicom);
  StudyResult empty;
  empty.study_instance_uid = study;
  CHECK(error_code_of([&] { report::structured_report(empty, {(dir / "a.dcm").string()}); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("nothing to report"));
  // a series description DICOM refuses (LO is 64 characters at most) names the attribute
  report::ReportOptions ro;
  ro.series_description = std::string(65, 'x');
  CHECK(error_code_of([&] { report::structured_report(r, {(dir / "a.dcm").string()}, ro); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("series_description"));
  ro = {};
  ro.sop_instance_uid = "1.2.x";
  CHECK(error_code_of([&] { report::structured_report(r, {(dir / "a.dcm").string()}, ro); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("sop_instance_uid"));
}
