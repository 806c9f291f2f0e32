// De-identification of DICOM files for outputs (DICOM PS3.15 Annex E, Basic Application Level
// Confidentiality Profile) and keyed pseudonyms for identifiers.
#pragma once

#include <medinfer/export.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace medinfer::dicom {

struct DeidentifyOptions {
  /// HMAC-SHA256 key (at least 16 bytes) from which replacement UIDs and the Patient ID pseudonym
  /// are derived: the same key maps the same study to the same new UIDs in every file, so a
  /// de-identified study stays a study. Keep it secret: whoever holds it can link pseudonyms back.
  std::string pseudonym_key;
  /// Written as Patient's Name (the profile requires a value, not the original).
  std::string patient_name = "ANONYMIZED";
};

/// What deidentify_file changed.
struct DeidentifyReport {
  std::size_t removed = 0;      ///< attributes removed (X), private attributes included
  std::size_t emptied = 0;      ///< attributes replaced by a zero-length value (Z)
  std::size_t replaced = 0;     ///< attributes replaced by a dummy or pseudonym (D)
  std::size_t uids_replaced = 0;  ///< UI values replaced by keyed pseudonym UIDs (U)
  /// Caveats the host must act on, e.g. "BurnedInAnnotation is YES: pixel data may show identifiers".
  std::vector<std::string> warnings;
};

/// Writes a de-identified copy of `input` to `output` (same transfer syntax, pixel data unchanged):
/// the Basic Profile's attributes are removed, emptied or replaced (names, IDs, dates of birth,
/// addresses, institution and physician names, accession number, descriptions and comments, all
/// private attributes, ...), every instance-identifying UID is replaced by a keyed pseudonym UID
/// (2.25.<decimal>, standard DICOM UIDs kept), and PatientIdentityRemoved = YES with a
/// DeidentificationMethodCodeSequence (DCM 113100) is added. Burned-in text in the pixels is not
/// removed: a warning says when BurnedInAnnotation is YES.
/// Throws Error: kInvalidArgument (key shorter than 16 bytes, output equal to input), what
/// read_instance throws for a bad input, kUnsupported (a transfer syntax DCMTK cannot re-encode),
/// kIo (cannot write `output`). Thread-safe.
MEDINFER_API DeidentifyReport deidentify_file(const std::string& input, const std::string& output,
                                              const DeidentifyOptions& options);

/// The keyed pseudonym UID for `uid`: "2.25." followed by the decimal value of the first 128 bits
/// of HMAC-SHA256(key, uid). Throws kInvalidArgument for a key shorter than 16 bytes.
MEDINFER_API std::string pseudonymize_uid(const std::string& uid, const std::string& key);

/// The keyed pseudonym for any identifier (hex HMAC-SHA256, 64 characters), as audit records use.
MEDINFER_API std::string pseudonymize(const std::string& value, const std::string& key);

}  // namespace medinfer::dicom
