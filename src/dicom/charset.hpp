// Internal: header text from the file's Specific Character Set to UTF-8 (charset.cpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace medinfer::dicom::detail {

/// The values of Specific Character Set, trimmed ("\ISO 2022 IR 87" gives {"", "ISO 2022 IR 87"}).
std::vector<std::string> character_set_terms(const std::string& value);
/// Whether every term is one decode_text knows.
bool character_set_known(const std::vector<std::string>& terms);
/// `bytes` as UTF-8, or nullopt when they are not valid text in those character sets. Person names
/// (`person_name`) also return to the initial state at '^' and '='.
std::optional<std::string> decode_text(const std::string& bytes, const std::vector<std::string>& terms,
                                       bool person_name);

}  // namespace medinfer::dicom::detail
