// Reading typed fields out of JSON with errors that name the field (kInvalidArgument).
// `where` is the path of the object being read, e.g. "manifest.json: preprocessing[1]".
#pragma once

#include <medinfer/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace medinfer::detail {

using Json = nlohmann::json;

/// Parses `text`; a syntax error names `where` and the byte offset, and a key that appears twice in one
/// object is refused naming its path ("where: risk.escalation_threshold: duplicate key"). Every JSON
/// the library reads goes through here.
Json parse_json(std::string_view text, const std::string& where);
/// Throws unless `value` is an object.
void require_object(const Json& value, const std::string& where);
/// The member `key` of object `obj`; throws if absent.
const Json& require_member(const Json& obj, const char* key, const std::string& where);
/// A finite number.
double get_number(const Json& obj, const char* key, const std::string& where);
/// An integer (a number with no fractional part).
std::int64_t get_integer(const Json& obj, const char* key, const std::string& where);
/// A non-empty string.
std::string get_string(const Json& obj, const char* key, const std::string& where);
/// Rejects members of `obj` not in `known`: a typo ("centre") must never silently fall back to a
/// default. The error names the field: "where.key: unknown field".
void reject_unknown_fields(const Json& obj, std::initializer_list<const char*> known, const std::string& where);
/// An error from a section's validate() (which names "section.field"), re-raised with the file part of
/// `where` ("manifest.json: risk" -> "manifest.json: risk.tiers[1].name: ...").
[[noreturn]] void rethrow_with_location(const Error& e, const std::string& where, const char* section);
/// Optional boolean: `fallback` when absent; "expected true or false" otherwise.
bool get_bool(const Json& obj, const char* key, const std::string& where, bool fallback);
/// Two numbers, e.g. [min, max]; `form` ("[min, max]") names the expected shape in the error.
std::pair<double, double> get_number_pair(const Json& obj, const char* key, const std::string& where,
                                          const char* form);
/// "file.json: key" at the top of a file, "where.key" below it.
std::string field_path(const std::string& where, const char* key);

/// Re-raises the exception in flight as medinfer::Error: an Error unchanged; nlohmann's exceptions and
/// std::logic_error (a type mismatch, an out-of-range index) as kInvalidArgument naming `where`;
/// std::bad_alloc as kResourceLimit; anything else as kInternal. Call it from a catch (...) block.
[[noreturn]] void rethrow_as_error(const std::string& where);

/// Runs `parse` and lets nothing but medinfer::Error out of it: every public parser of JSON text
/// (manifest, spec, calibration, risk policy, audit record) goes through this, so a dependency's
/// exception never escapes the API.
template <class F>
auto guarded_parse(const std::string& where, F&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (...) {
    rethrow_as_error(where);
  }
}

}  // namespace medinfer::detail
