// PS3.15 Annex E Basic Application Level Confidentiality Profile, applied with DCMTK, after the
// input has passed the same bounds-checked walk as every other read.
#include <medinfer/deidentify.hpp>
#include <medinfer/error.hpp>

#include "core/sha256.hpp"
#include "dicom/dicom_file.hpp"
#include "dicom/sr_document.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcvrui.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <fmt/format.h>

#include <filesystem>

namespace medinfer::dicom {
namespace {

enum class Action { kRemove, kEmpty, kDummy };

struct Rule {
  DcmTagKey tag;
  Action action;
};

// The profile's attributes that commonly occur in images (PS3.15 Table E.1-1, Basic Profile column).
// Where the profile allows X/Z/D we remove unless the attribute is Type 2 in image IODs (Z).
const Rule kRules[] = {
    {DCM_AccessionNumber, Action::kEmpty},
    {DCM_ReferringPhysicianName, Action::kEmpty},
    {DCM_PatientBirthDate, Action::kEmpty},
    {DCM_PatientSex, Action::kEmpty},
    {DCM_StudyID, Action::kEmpty},
    {DCM_StudyDate, Action::kEmpty},
    {DCM_StudyTime, Action::kEmpty},
    {DCM_ContentDate, Action::kEmpty},
    {DCM_ContentTime, Action::kEmpty},
    {DCM_PatientName, Action::kDummy},
    {DCM_PatientID, Action::kDummy},
    {DCM_SeriesDate, Action::kRemove},
    {DCM_SeriesTime, Action::kRemove},
    {DCM_AcquisitionDate, Action::kRemove},
    {DCM_AcquisitionTime, Action::kRemove},
    {DCM_AcquisitionDateTime, Action::kRemove},
    {DCM_InstitutionName, Action::kRemove},
    {DCM_InstitutionAddress, Action::kRemove},
    {DCM_InstitutionalDepartmentName, Action::kRemove},
    {DCM_ReferringPhysicianAddress, Action::kRemove},
    {DCM_ReferringPhysicianTelephoneNumbers, Action::kRemove},
    {DCM_ReferringPhysicianIdentificationSequence, Action::kRemove},
    {DCM_StationName, Action::kRemove},
    {DCM_StudyDescription, Action::kRemove},
    {DCM_SeriesDescription, Action::kRemove},
    {DCM_PhysiciansOfRecord, Action::kRemove},
    {DCM_PhysiciansOfRecordIdentificationSequence, Action::kRemove},
    {DCM_PerformingPhysicianName, Action::kRemove},
    {DCM_PerformingPhysicianIdentificationSequence, Action::kRemove},
    {DCM_NameOfPhysiciansReadingStudy, Action::kRemove},
    {DCM_PhysiciansReadingStudyIdentificationSequence, Action::kRemove},
    {DCM_OperatorsName, Action::kRemove},
    {DCM_OperatorIdentificationSequence, Action::kRemove},
    {DCM_AdmittingDiagnosesDescription, Action::kRemove},
    {DCM_DerivationDescription, Action::kRemove},
    {DCM_RETIRED_OtherPatientIDs, Action::kRemove},
    {DCM_OtherPatientNames, Action::kRemove},
    {DCM_OtherPatientIDsSequence, Action::kRemove},
    {DCM_PatientBirthName, Action::kRemove},
    {DCM_PatientBirthTime, Action::kRemove},
    {DCM_PatientAge, Action::kRemove},
    {DCM_PatientSize, Action::kRemove},
    {DCM_PatientWeight, Action::kRemove},
    {DCM_PatientAddress, Action::kRemove},
    {DCM_PatientMotherBirthName, Action::kRemove},
    {DCM_RETIRED_MedicalRecordLocator, Action::kRemove},
    {DCM_PatientTelephoneNumbers, Action::kRemove},
    {DCM_EthnicGroup, Action::kRemove},
    {DCM_Occupation, Action::kRemove},
    {DCM_AdditionalPatientHistory, Action::kRemove},
    {DCM_PatientReligiousPreference, Action::kRemove},
    {DCM_PatientComments, Action::kRemove},
    {DCM_PatientInsurancePlanCodeSequence, Action::kRemove},
    {DCM_MedicalAlerts, Action::kRemove},
    {DCM_Allergies, Action::kRemove},
    {DCM_PregnancyStatus, Action::kRemove},
    {DCM_DeviceSerialNumber, Action::kRemove},
    {DCM_ProtocolName, Action::kRemove},
    {DCM_ImageComments, Action::kRemove},
    {DCM_RequestingPhysician, Action::kRemove},
    {DCM_RequestedProcedureDescription, Action::kRemove},
    {DCM_RETIRED_StudyComments, Action::kRemove},
    {DCM_AdmissionID, Action::kRemove},
    {DCM_CurrentPatientLocation, Action::kRemove},
    {DCM_PatientInstitutionResidence, Action::kRemove},
    {DCM_ScheduledPerformingPhysicianName, Action::kRemove},
    {DCM_PerformedProcedureStepStartDate, Action::kRemove},
    {DCM_PerformedProcedureStepID, Action::kRemove},
    {DCM_PerformedProcedureStepDescription, Action::kRemove},
    {DCM_RequestAttributesSequence, Action::kRemove},
    {DCM_RequestedProcedureID, Action::kRemove},
    {DCM_PlacerOrderNumberImagingServiceRequest, Action::kRemove},
    {DCM_FillerOrderNumberImagingServiceRequest, Action::kRemove},
    {DCM_ContentSequence, Action::kRemove},
    {DCM_OriginalAttributesSequence, Action::kRemove},
    {DCM_TimezoneOffsetFromUTC, Action::kRemove},
    {DCM_AcquisitionDeviceProcessingDescription, Action::kRemove},
    {DCM_IssuerOfPatientID, Action::kRemove},
    {DCM_IssuerOfAccessionNumberSequence, Action::kRemove},
};

// UI attributes that name classes, syntaxes or coding schemes rather than instances: kept.
bool keeps_uid(const DcmTagKey& tag, const char* value) {
  static const DcmTagKey kKeep[] = {DCM_SOPClassUID, DCM_ReferencedSOPClassUID, DCM_MediaStorageSOPClassUID,
                                    DCM_TransferSyntaxUID, DCM_ImplementationClassUID, DCM_CodingSchemeUID,
                                    DCM_ContextGroupExtensionCreatorUID, DCM_AffectedSOPClassUID,
                                    DCM_RequestedSOPClassUID, DCM_ReferencedTransferSyntaxUIDInFile,
                                    DCM_ReferencedSOPClassUIDInFile, DCM_RelatedGeneralSOPClassUID,
                                    DCM_OriginalSpecializedSOPClassUID};
  for (const DcmTagKey& k : kKeep) {
    if (tag == k) return true;
  }
  return value == nullptr || std::string(value).rfind("1.2.840.10008.", 0) == 0;
}

void require_key(const std::string& key) {
  if (key.size() < 16) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("pseudonym key has {} bytes; at least 16 are needed", key.size()));
  }
}

}  // namespace

std::string pseudonymize(const std::string& value, const std::string& key) {
  require_key(key);
  return medinfer::detail::hmac_sha256_hex(key, value);
}

std::string pseudonymize_uid(const std::string& uid, const std::string& key) {
  return sr::uid_from_hex(pseudonymize(uid, key));
}

DeidentifyReport deidentify_file(const std::string& input, const std::string& output, const DeidentifyOptions& options) {
  require_key(options.pseudonym_key);
  {
    std::error_code ec;
    if (std::filesystem::equivalent(input, output, ec)) {
      throw Error(ErrorCode::kInvalidArgument, "deidentify_file: output must not be the input file");
    }
  }
  ReadOptions read;
  // The same bounds-checked walk as every read: a crafted length fails here, before DCMTK allocates.
  auto checked = detail::DicomFile::open_path(input, read);
  const std::string syntax = checked->header().transfer_syntax_uid;
  if (DcmXfer(syntax.c_str()).getXfer() == EXS_Unknown) {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("{}: transfer syntax {} ({}) cannot be re-encoded by DCMTK 3.6.7", input, syntax,
                            checked->header().transfer_syntax_name));
  }
  checked.reset();

  DcmFileFormat file;
  OFCondition c = file.loadFile(input.c_str());
  if (c.bad()) throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: DCMTK cannot load it: {}", input, c.text()));
  DcmDataset& ds = *file.getDataset();
  DeidentifyReport report;

  {
    OFString burned;
    if (ds.findAndGetOFString(DCM_BurnedInAnnotation, burned).good() && burned == "YES") {
      report.warnings.push_back("BurnedInAnnotation is YES: the pixel data may show identifiers, which this profile "
                                "does not remove");
    }
  }
  for (const Rule& r : kRules) {
    const bool present = ds.tagExists(r.tag, OFTrue);
    if (!present) continue;
    switch (r.action) {
      case Action::kRemove:
        while (ds.findAndDeleteElement(r.tag, OFTrue, OFTrue).good()) ++report.removed;
        break;
      case Action::kEmpty:
        ds.findAndDeleteElement(r.tag, OFTrue, OFTrue);
        ds.insertEmptyElement(r.tag, OFTrue);
        ++report.emptied;
        break;
      case Action::kDummy:
        break;  // below
    }
  }
  // Patient's Name and Patient ID are Type 2 and must stay: a dummy name, a keyed ID.
  {
    OFString id;
    ds.findAndGetOFString(DCM_PatientID, id);
    ds.putAndInsertString(DCM_PatientName, options.patient_name.c_str());
    ds.putAndInsertString(DCM_PatientID, pseudonymize(id.c_str(), options.pseudonym_key).substr(0, 32).c_str());
    report.replaced += 2;
  }
  // Private attributes, overlays' data and comments, curves.
  {
    std::vector<DcmTagKey> doomed;
    for (unsigned long i = 0; i < ds.card(); ++i) {
      const DcmTagKey key = ds.getElement(i)->getTag();
      const Uint16 g = key.getGroup();
      if (key.isPrivate() || (g >= 0x5000 && g <= 0x50FF) ||
          (g >= 0x6000 && g <= 0x60FF && (key.getElement() == 0x3000 || key.getElement() == 0x4000))) {
        doomed.push_back(key);
      }
    }
    for (const DcmTagKey& k : doomed) {
      if (ds.findAndDeleteElement(k).good()) ++report.removed;
    }
    // Private attributes nested in sequences.
    DcmStack stack;
    std::vector<std::pair<DcmItem*, DcmTagKey>> nested;
    while (ds.nextObject(stack, OFTrue).good()) {
      DcmObject* obj = stack.top();
      if (obj->getTag().isPrivate() && stack.card() > 1) {
        if (auto* parent = dynamic_cast<DcmItem*>(stack.elem(1))) nested.push_back({parent, obj->getTag()});
      }
    }
    // Innermost first: a private sequence's own private children go before the sequence does.
    for (auto it = nested.rbegin(); it != nested.rend(); ++it) {
      auto& [parent, key] = *it;
      if (parent->findAndDeleteElement(key).good()) ++report.removed;
    }
  }
  // Instance UIDs, everywhere (sequences included), consistently under the key.
  {
    DcmStack stack;
    while (ds.nextObject(stack, OFTrue).good()) {
      DcmObject* obj = stack.top();
      if (obj->ident() != EVR_UI) continue;
      auto* element = static_cast<DcmElement*>(obj);
      char* value = nullptr;
      if (element->getString(value).bad() || value == nullptr || *value == '\0') continue;
      if (keeps_uid(obj->getTag(), value)) continue;
      const std::string replacement = pseudonymize_uid(value, options.pseudonym_key);
      element->putString(replacement.c_str());
      ++report.uids_replaced;
    }
  }
  ds.putAndInsertString(DCM_PatientIdentityRemoved, "YES");
  ds.putAndInsertString(DCM_DeidentificationMethod,
                        "PS3.15 Annex E Basic Profile (medinfer)");  // LO: 64 characters at most
  ds.findAndDeleteElement(DCM_DeidentificationMethodCodeSequence);
  DcmItem* code = nullptr;
  if (ds.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, code, 0).good() && code != nullptr) {
    code->putAndInsertString(DCM_CodeValue, "113100");
    code->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
    code->putAndInsertString(DCM_CodeMeaning, "Basic Application Confidentiality Profile");
  }
  // The File Meta is rebuilt from the dataset (new Media Storage SOP Instance UID included).
  file.getMetaInfo()->clear();
  c = file.saveFile(output.c_str(), EXS_Unknown);
  if (c.bad()) throw Error(ErrorCode::kIo, fmt::format("{}: cannot write the de-identified file: {}", output, c.text()));
  return report;
}

}  // namespace medinfer::dicom
