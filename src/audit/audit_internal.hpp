// Internal helpers of the audit module, also used by the pipeline to stamp records.
#pragma once

#include <medinfer/audit.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace medinfer::audit::detail {

/// RFC 3339 UTC with microseconds, now.
std::string now_rfc3339();
/// A random (version 4) UUID.
std::string new_uuid();
/// gethostname() (read once), or "unknown".
const std::string& host_name();
/// The next emission sequence number of this process (1, 2, ...).
std::uint64_t next_sequence();
/// The record as an ordered JSON object (the exact field order of to_json_line).
nlohmann::ordered_json to_json(const Record& record);

}  // namespace medinfer::audit::detail
