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

/// The longest host-supplied identifier (user or application id) a record carries, and the longest
/// free-text detail of a host event: what a host passes is bounded, not copied whole into every record.
constexpr std::size_t kMaxActorIdBytes = 256;
constexpr std::size_t kMaxDetailBytes = 4096;
/// `actor` as records carry it: user_id never empty (the OS account of this process, else "unknown");
/// kInvalidArgument naming the field for an id above kMaxActorIdBytes.
Actor checked_actor(Actor actor);
/// kInvalidArgument for a host event's detail above kMaxDetailBytes.
void check_detail(const std::string& detail, const std::string& what);

}  // namespace medinfer::audit::detail
