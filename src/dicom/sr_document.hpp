// An SR content tree in neutral form, and its encoding as a DICOM Comprehensive SR object (DCMTK
// dcmsr, which lives in this module). The report module (src/report) decides what the tree says
// (TID 1500, the codes); this file only knows how a tree becomes a Part 10 object.
#pragma once

#include <string>
#include <vector>

namespace medinfer::dicom::sr {

struct Code {
  std::string value, scheme, meaning;
};

/// One content item and its children.
struct Item {
  enum class Type { kContainer, kText, kCode, kNum, kUidRef, kImage };
  enum class Relation { kContains, kHasObsContext, kHasConceptMod, kInferredFrom };
  Type type = Type::kContainer;
  Relation relation = Relation::kContains;  ///< to its parent (ignored for the root)
  Code name;
  std::string text;       ///< TEXT, UIDREF: the value; NUM: the value as a DS string
  Code code;              ///< CODE: the value; NUM: the UCUM unit
  std::string sop_class_uid, sop_instance_uid;  ///< IMAGE
  std::vector<Item> children;

  Item& add(Item child) {
    children.push_back(std::move(child));
    return children.back();
  }
};

Item container(Item::Relation relation, Code name);
Item text(Item::Relation relation, Code name, std::string value);
Item code(Item::Relation relation, Code name, Code value);
Item uidref(Item::Relation relation, Code name, std::string uid);
Item num(Item::Relation relation, Code name, double value, Code unit);
Item image(Item::Relation relation, Code name, std::string sop_class_uid, std::string sop_instance_uid);

/// A source instance the report references (Current Requested Procedure Evidence).
struct Reference {
  std::string study_instance_uid, series_instance_uid, sop_class_uid, sop_instance_uid;
};

/// A private coding scheme the content uses (Coding Scheme Identification Sequence).
struct CodingScheme {
  std::string designator, name, responsible_organization;
};

struct Document {
  Item root;
  std::vector<CodingScheme> private_schemes;                          ///< a CONTAINER
  std::string template_id;            ///< of the root, with mapping resource "DCMR" ("1500")
  std::string patient_study_source;   ///< the DICOM file whose Patient and General Study modules are copied
  std::vector<Reference> evidence;    ///< every instance the content references
  std::string series_instance_uid, sop_instance_uid;
  std::string series_description;
  int series_number = 0, instance_number = 1;
  std::string manufacturer, model_name, software_versions;
  std::string content_date, content_time;  ///< YYYYMMDD, HHMMSS (UTC: Timezone Offset From UTC +0000)
};

/// The document as Part 10 bytes (Explicit VR Little Endian, UTF-8 text: the copied patient and study
/// attributes are converted to UTF-8). Throws Error: kNotFound/kIo/kInvalidDicom for the source file,
/// kInvalidArgument (naming the item) for a content item DCMTK refuses.
std::string encode(const Document& document);

/// "2.25." followed by the decimal value of the first 128 bits of `hex` (at least 32 hex digits): the
/// UID form of PS3.5 B.2 for a value that is not registered under an organisation's root.
std::string uid_from_hex(const std::string& hex);
/// A new random UID (2.25. of 128 random bits).
std::string new_uid();

}  // namespace medinfer::dicom::sr
