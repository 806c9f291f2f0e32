#include "dicom/sr_document.hpp"

#include <medinfer/error.hpp>

#include "core/sha256.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <fmt/format.h>

#include <filesystem>

namespace medinfer::dicom::sr {

Item container(Item::Relation relation, Code name) {
  Item i;
  i.type = Item::Type::kContainer;
  i.relation = relation;
  i.name = std::move(name);
  return i;
}
Item text(Item::Relation relation, Code name, std::string value) {
  Item i = container(relation, std::move(name));
  i.type = Item::Type::kText;
  i.text = std::move(value);
  return i;
}
Item code(Item::Relation relation, Code name, Code value) {
  Item i = container(relation, std::move(name));
  i.type = Item::Type::kCode;
  i.code = std::move(value);
  return i;
}
Item uidref(Item::Relation relation, Code name, std::string uid) {
  Item i = text(relation, std::move(name), std::move(uid));
  i.type = Item::Type::kUidRef;
  return i;
}
Item num(Item::Relation relation, Code name, double value, Code unit) {
  Item i = container(relation, std::move(name));
  i.type = Item::Type::kNum;
  // DS: at most 16 characters: the most significant digits that fit (14 for a probability like
  // 0.99999999999987, so a near-certain finding is not rounded up to 1).
  for (int digits = 15; digits >= 1; --digits) {
    i.text = fmt::format("{:.{}g}", value, digits);
    if (i.text.size() <= 16) break;
  }
  i.code = std::move(unit);
  return i;
}
Item image(Item::Relation relation, Code name, std::string sop_class_uid, std::string sop_instance_uid) {
  Item i = container(relation, std::move(name));
  i.type = Item::Type::kImage;
  i.sop_class_uid = std::move(sop_class_uid);
  i.sop_instance_uid = std::move(sop_instance_uid);
  return i;
}

std::string uid_from_hex(const std::string& hex) {
  if (hex.size() < 32) throw Error(ErrorCode::kInvalidArgument, "uid_from_hex: at least 32 hex digits are needed");
  unsigned __int128 v = 0;
  for (int i = 0; i < 32; ++i) {
    const char c = hex[static_cast<std::size_t>(i)];
    const bool digit = c >= '0' && c <= '9';
    const bool lower = c >= 'a' && c <= 'f';
    if (!digit && !lower) throw Error(ErrorCode::kInvalidArgument, "uid_from_hex: not lower-case hex");
    v = (v << 4) | static_cast<unsigned>(digit ? c - '0' : c - 'a' + 10);
  }
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + digits;
}

std::string new_uid() { return uid_from_hex(medinfer::detail::to_hex(medinfer::detail::random_bytes(16))); }

namespace {

DSRTypes::E_ValueType value_type(Item::Type t) {
  switch (t) {
    case Item::Type::kContainer: return DSRTypes::VT_Container;
    case Item::Type::kText: return DSRTypes::VT_Text;
    case Item::Type::kCode: return DSRTypes::VT_Code;
    case Item::Type::kNum: return DSRTypes::VT_Num;
    case Item::Type::kUidRef: return DSRTypes::VT_UIDRef;
    case Item::Type::kImage: return DSRTypes::VT_Image;
  }
  return DSRTypes::VT_invalid;
}

DSRTypes::E_RelationshipType relation_type(Item::Relation r) {
  switch (r) {
    case Item::Relation::kContains: return DSRTypes::RT_contains;
    case Item::Relation::kHasObsContext: return DSRTypes::RT_hasObsContext;
    case Item::Relation::kHasConceptMod: return DSRTypes::RT_hasConceptMod;
    case Item::Relation::kInferredFrom: return DSRTypes::RT_inferredFrom;
  }
  return DSRTypes::RT_invalid;
}

DSRCodedEntryValue coded(const Code& c) {
  // DCMTK puts a code value longer than 16 characters in Long Code Value (UC) by itself.
  return DSRCodedEntryValue(c.value.c_str(), c.scheme.c_str(), c.meaning.c_str(), DSRTypes::CVT_auto, OFFalse);
}

void check(const OFCondition& c, const Item& item, const char* what) {
  if (c.bad()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("SR content item '{}': {} refused: {}", item.name.meaning, what, c.text()));
  }
}

void set_value(DSRContentItem& target, const Item& item) {
  if (!item.name.value.empty()) check(target.setConceptName(coded(item.name), OFFalse), item, "name name");
  switch (item.type) {
    case Item::Type::kContainer:
      check(target.setContinuityOfContent(DSRTypes::COC_Separate), item, "continuity of content");
      break;
    case Item::Type::kText:
    case Item::Type::kUidRef:
      check(target.setStringValue(item.text.c_str(), OFFalse), item, "value");
      break;
    case Item::Type::kCode: check(target.setCodeValue(coded(item.code), OFFalse), item, "code"); break;
    case Item::Type::kNum:
      check(target.setNumericValue(DSRNumericMeasurementValue(item.text.c_str(), coded(item.code), OFFalse), OFFalse),
            item, "numeric value");
      break;
    case Item::Type::kImage:
      check(target.setImageReference(
                DSRImageReferenceValue(item.sop_class_uid.c_str(), item.sop_instance_uid.c_str(), OFFalse), OFFalse),
            item, "image reference");
      break;
  }
}

// Adds `parent`'s children below the tree's current node (which is `parent`), depth first; the
// current node is `parent` again on return.
void add_children(DSRDocumentTree& tree, const Item& parent) {
  bool first = true;
  for (const Item& child : parent.children) {
    const size_t node = tree.addContentItem(relation_type(child.relation), value_type(child.type),
                                            first ? DSRTypes::AM_belowCurrent : DSRTypes::AM_afterCurrent);
    if (node == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("SR content item '{}' may not be added under '{}' in a Comprehensive SR",
                              child.name.meaning, parent.name.meaning));
    }
    first = false;
    set_value(tree.getCurrentContentItem(), child);
    if (!child.children.empty()) {
      add_children(tree, child);
    }
  }
  if (!parent.children.empty()) tree.goUp();
}

void put(DcmDataset& ds, const DcmTagKey& tag, const std::string& value) {
  const OFCondition c = ds.putAndInsertString(tag, value.c_str());
  if (c.bad()) throw Error(ErrorCode::kInvalidArgument, fmt::format("SR: {} '{}' refused: {}", DcmTag(tag).getTagName(), value, c.text()));
}

}  // namespace

std::string encode(const Document& d) {
  // The source's Patient and General Study modules, in UTF-8 like the rest of the report.
  DcmFileFormat source;
  {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(d.patient_study_source, ec)) {
      throw Error(ErrorCode::kNotFound, fmt::format("{}: no such file (the report's source)", d.patient_study_source));
    }
    const OFCondition c = source.loadFileUntilTag(d.patient_study_source.c_str(), EXS_Unknown, EGL_noChange,
                                                  DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
    if (c.bad()) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: DCMTK cannot load it: {}", d.patient_study_source, c.text()));
    }
    const OFCondition u = source.convertToUTF8();
    if (u.bad()) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: its text cannot be converted to UTF-8 for the report: {}",
                                                        d.patient_study_source, u.text()));
    }
  }
  DcmDataset& src = *source.getDataset();

  DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
  doc.setSpecificCharacterSetType(DSRTypes::CS_UTF8);
  if (doc.readPatientData(src).bad() || doc.readStudyData(src).bad()) {
    throw Error(ErrorCode::kInvalidDicom,
                fmt::format("{}: its Patient or General Study module cannot be read", d.patient_study_source));
  }
  OFString study_uid;
  src.findAndGetOFString(DCM_StudyInstanceUID, study_uid);
  if (study_uid.empty()) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: no StudyInstanceUID (0020,000D): the report could not be "
                                                      "filed with its study", d.patient_study_source));
  }
  doc.createNewSeriesInStudy(study_uid);
  doc.setSeriesDescription(d.series_description.c_str(), OFFalse);
  doc.setSeriesNumber(std::to_string(d.series_number).c_str(), OFFalse);
  doc.setInstanceNumber(std::to_string(d.instance_number).c_str(), OFFalse);
  doc.setManufacturer(d.manufacturer.c_str(), OFFalse);
  doc.setManufacturerModelName(d.model_name.c_str(), OFFalse);
  doc.setSoftwareVersions(d.software_versions.c_str(), OFFalse);
  doc.setContentDate(d.content_date.c_str(), OFFalse);
  doc.setContentTime(d.content_time.c_str(), OFFalse);
  doc.setTimezoneOffsetFromUTC("+0000", OFFalse);  // content date and time are UTC

  doc.completeDocument();  // Completion Flag COMPLETE; Verification Flag stays UNVERIFIED (no human signed it)
  DSRDocumentTree& tree = doc.getTree();
  if (tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) == 0) {
    throw Error(ErrorCode::kInvalidArgument, "SR: the root container was refused");
  }
  set_value(tree.getCurrentContentItem(), d.root);
  if (!d.template_id.empty()) {
    check(tree.getCurrentContentItem().setTemplateIdentification(d.template_id.c_str(), "DCMR"), d.root,
          "template identification");
  }
  add_children(tree, d.root);

  for (const CodingScheme& cs : d.private_schemes) {
    DSRCodingSchemeIdentificationList& list = doc.getCodingSchemeIdentification();
    if (list.addItem(cs.designator.c_str()).bad() || list.setCodingSchemeName(cs.name.c_str(), OFFalse).bad() ||
        list.setCodingSchemeResponsibleOrganization(cs.responsible_organization.c_str(), OFFalse).bad()) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("SR: coding scheme {} refused", cs.designator));
    }
  }
  for (const Reference& r : d.evidence) {
    const OFCondition c = doc.getCurrentRequestedProcedureEvidence().addItem(
        r.study_instance_uid.c_str(), r.series_instance_uid.c_str(), r.sop_class_uid.c_str(), r.sop_instance_uid.c_str());
    if (c.bad()) {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("SR: evidence reference to {} refused: {}", r.sop_instance_uid,
                                                           c.text()));
    }
  }

  DcmFileFormat out;
  DcmDataset& ds = *out.getDataset();
  {
    const OFCondition c = doc.write(ds);
    if (c.bad()) throw Error(ErrorCode::kInvalidArgument, fmt::format("SR: DCMTK cannot write the document: {}", c.text()));
  }
  // Our own UIDs (random 2.25 UIDs, or the host's), not DCMTK's site root.
  put(ds, DCM_SeriesInstanceUID, d.series_instance_uid);
  put(ds, DCM_SOPInstanceUID, d.sop_instance_uid);

  std::string bytes;
  {
    const E_TransferSyntax xfer = EXS_LittleEndianExplicit;
    out.validateMetaInfo(xfer);
    out.removeInvalidGroups();
    const Uint32 length = out.calcElementLength(xfer, EET_ExplicitLength);
    if (length == DCM_UndefinedLength || length > (1u << 30)) {
      throw Error(ErrorCode::kResourceLimit, "SR: the document would be larger than 1 GiB");
    }
    bytes.resize(std::size_t{length} + 4096);
    DcmOutputBufferStream stream(bytes.data(), bytes.size());
    out.transferInit();
    const OFCondition c = out.write(stream, xfer, EET_ExplicitLength, nullptr);
    out.transferEnd();
    if (c.bad()) throw Error(ErrorCode::kIo, fmt::format("SR: DCMTK cannot encode the document: {}", c.text()));
    void* buffer = nullptr;
    offile_off_t written = 0;
    stream.flushBuffer(buffer, written);
    bytes.resize(static_cast<std::size_t>(written));
  }
  return bytes;
}

}  // namespace medinfer::dicom::sr
