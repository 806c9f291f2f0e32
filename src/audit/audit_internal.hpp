// Internal helpers of the audit module, also used by the pipeline to stamp records.
#pragma once

#include <medinfer/audit.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace medinfer::audit::detail {

/// gethostname() (read once), or "unknown".
const std::string& host_name();
/// Sets the fields every record carries when it is emitted: timestamp, event id, host, and (when
/// `numbered`) the next sequence number. Checkpoints are not numbered (sequence 0).
void stamp(Record& record, bool numbered = true);
/// The record as an ordered JSON object (the exact field order of to_json_line).
nlohmann::ordered_json to_json(const Record& record);

}  // namespace medinfer::audit::detail
