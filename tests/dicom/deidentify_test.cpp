// De-identification (PS3.15 Annex E Basic Profile), checked with DCMTK's dcmdump as the reader.
#include <medinfer/deidentify.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>

#include <catch2/catch.hpp>

#include "../support/test_support.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>

#include <cstdio>
#include <memory>

using namespace medinfer;
using test::error_code_of;

namespace {

std::string dcmdump(const test::fs::path& p) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(("dcmdump -Un +L " + p.string() + " 2>&1").c_str(), "r"), pclose);
  REQUIRE(pipe);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
  return out;
}

std::string value_of(const std::string& dump, const std::string& tag) {
  const auto pos = dump.find(tag);
  if (pos == std::string::npos) return {};
  const auto open = dump.find('[', pos), close = dump.find(']', pos);
  return open == std::string::npos || close < open ? std::string() : dump.substr(open + 1, close - open - 1);
}

// A file full of identifiers: the test writer's, plus institution, a private block and a nested
// sequence carrying a name and a referenced instance UID.
void write_phi_file(const test::fs::path& path, const std::string& sop_uid) {
  test::DicomSpec s;
  s.patient_name = "WINTERBOTTOM^AURELIA";
  s.patient_id = "MRN-31415926";
  s.patient_birth_date = "19450203";
  s.accession_number = "ACC-2718281";
  s.study_uid = "1.2.826.0.1.3680043.9.5151.1";
  s.series_uid = "1.2.826.0.1.3680043.9.5151.2";
  s.sop_uid = sop_uid;
  test::write_dicom(path, s);
  DcmFileFormat file;
  REQUIRE(file.loadFile(path.c_str()).good());
  DcmDataset* ds = file.getDataset();
  ds->putAndInsertString(DCM_InstitutionName, "ST BARNABAS GENERAL");
  ds->putAndInsertString(DCM_ReferringPhysicianName, "HOUSE^GREGORY");
  ds->putAndInsertString(DCM_StudyDescription, "CT CHEST FOR WINTERBOTTOM");
  ds->putAndInsertString(DCM_StudyDate, "20240102");
  ds->putAndInsertString(DCM_BurnedInAnnotation, "YES");
  ds->putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), "ACME PRIVATE");
  ds->putAndInsertString(DcmTag(0x0029, 0x1010, EVR_LO), "WINTERBOTTOM SECRET");
  DcmItem* item = nullptr;
  REQUIRE(ds->findOrCreateSequenceItem(DCM_ReferencedImageSequence, item, 0).good());
  item->putAndInsertString(DCM_ReferencedSOPClassUID, "1.2.840.10008.5.1.4.1.1.2");
  item->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.826.0.1.3680043.9.5151.77");
  item->putAndInsertString(DCM_OperatorsName, "NURSE^WINTERBOTTOM");
  REQUIRE(file.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
}

}  // namespace

TEST_CASE("deidentify_file applies the Basic Profile, keeps pixels, and maps UIDs consistently under the key",
          "[dicom][deidentify]") {
  test::TempDir dir;
  write_phi_file(dir / "a.dcm", "1.2.826.0.1.3680043.9.5151.3");
  write_phi_file(dir / "b.dcm", "1.2.826.0.1.3680043.9.5151.4");
  dicom::DeidentifyOptions o;
  o.pseudonym_key = "a hospital-held secret key";
  const auto ra = dicom::deidentify_file((dir / "a.dcm").string(), (dir / "a-anon.dcm").string(), o);
  dicom::deidentify_file((dir / "b.dcm").string(), (dir / "b-anon.dcm").string(), o);
  CHECK(ra.removed >= 5);
  CHECK(ra.uids_replaced >= 4);
  REQUIRE(ra.warnings.size() == 1);
  CHECK_THAT(ra.warnings[0], Catch::Contains("BurnedInAnnotation"));

  const std::string before = dcmdump(dir / "a.dcm");
  const std::string after = dcmdump(dir / "a-anon.dcm");
  CHECK(before.find("WINTERBOTTOM") != std::string::npos);  // the test file really had them
  for (const char* phi : {"WINTERBOTTOM", "AURELIA", "MRN-31415926", "19450203", "ACC-2718281", "BARNABAS", "HOUSE",
                          "ACME", "20240102", "9.5151"}) {
    INFO(phi);
    CHECK(after.find(phi) == std::string::npos);
  }
  CHECK(value_of(after, "(0012,0062)") == "YES");
  CHECK(after.find("113100") != std::string::npos);
  CHECK(value_of(after, "(0010,0010)") == "ANONYMIZED");
  CHECK(value_of(after, "(0008,0016)") == "1.2.840.10008.5.1.4.1.1.2");  // SOP Class kept

  const auto ha = dicom::read_header((dir / "a-anon.dcm").string());
  const auto hb = dicom::read_header((dir / "b-anon.dcm").string());
  CHECK(ha.study_instance_uid == hb.study_instance_uid);  // still one study
  CHECK(ha.study_instance_uid == dicom::pseudonymize_uid("1.2.826.0.1.3680043.9.5151.1", o.pseudonym_key));
  CHECK(ha.sop_instance_uid != hb.sop_instance_uid);
  CHECK(ha.sop_instance_uid.rfind("2.25.", 0) == 0);
  CHECK(ha.sop_instance_uid.size() <= 64);
  CHECK(value_of(after, "(0002,0003)") == ha.sop_instance_uid);  // File Meta follows the dataset
  const auto pa = dicom::statistics(dicom::read_stored_pixels((dir / "a.dcm").string()));
  const auto pb = dicom::statistics(dicom::read_stored_pixels((dir / "a-anon.dcm").string()));
  CHECK(pa.sha256 == pb.sha256);

  dicom::DeidentifyOptions other = o;
  other.pseudonym_key = "another hospital, another key";
  CHECK(dicom::pseudonymize_uid("1.2.3", o.pseudonym_key) != dicom::pseudonymize_uid("1.2.3", other.pseudonym_key));
}

TEST_CASE("deidentify_file refuses a short key, overwriting its input, and bad files", "[dicom][deidentify][errors]") {
  test::TempDir dir;
  write_phi_file(dir / "a.dcm", "1.2.826.0.1.3680043.9.5151.3");
  dicom::DeidentifyOptions o;
  o.pseudonym_key = "short";
  std::string msg;
  CHECK(error_code_of([&] { dicom::deidentify_file((dir / "a.dcm").string(), (dir / "o.dcm").string(), o); }, &msg) ==
        ErrorCode::kInvalidArgument);
  CHECK_THAT(msg, Catch::Contains("16"));
  o.pseudonym_key = std::string(32, 'k');
  CHECK(error_code_of([&] { dicom::deidentify_file((dir / "a.dcm").string(), (dir / "a.dcm").string(), o); }) ==
        ErrorCode::kInvalidArgument);
  test::write_text(dir / "junk.dcm", "not DICOM");
  CHECK(error_code_of([&] { dicom::deidentify_file((dir / "junk.dcm").string(), (dir / "o.dcm").string(), o); }) ==
        ErrorCode::kInvalidDicom);
  CHECK_FALSE(test::fs::exists(dir / "o.dcm"));
}
