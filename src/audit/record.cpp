// The audit record: JSON Lines form, parsing, and the ATNA / FHIR mappings.
#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include "audit/audit_internal.hpp"
#include "core/json_util.hpp"
#include "core/sha256.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>

namespace medinfer::audit {

using OJson = nlohmann::ordered_json;

const char* to_string(EventType type) noexcept {
  switch (type) {
    case EventType::kInference: return "inference";
    case EventType::kModelOpened: return "model_opened";
    case EventType::kModelRefused: return "model_refused";
    case EventType::kConfigurationChange: return "configuration_change";
    case EventType::kOverride: return "override";
    case EventType::kLogVerified: return "log_verified";
    case EventType::kCheckpoint: return "checkpoint";
    case EventType::kDicomTransfer: return "dicom_transfer";
  }
  return "unknown";
}

const char* to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::kOk: return "ok";
    case Outcome::kIndeterminate: return "indeterminate";
    case Outcome::kError: return "error";
  }
  return "unknown";
}

const char* to_string(Durability durability) noexcept {
  switch (durability) {
    case Durability::kStrict: return "strict";
    case Durability::kBuffered: return "buffered";
  }
  return "unknown";
}

namespace detail {
namespace {

// RFC 3339 UTC with microseconds, now.
std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

// The next emission sequence number of this process (1, 2, ...).
std::uint64_t next_sequence() {
  static std::atomic<std::uint64_t> sequence{0};
  return ++sequence;
}

}  // namespace

Actor checked_actor(Actor actor) {
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"user_id", &actor.user_id},
                                     std::pair<const char*, const std::string*>{"application_id", &actor.application_id}}) {
    if (value->size() > kMaxActorIdBytes) {
      throw Error(ErrorCode::kInvalidArgument, std::string("audit actor: ") + field + ": " + std::to_string(value->size()) +
                                                   " bytes, at most " + std::to_string(kMaxActorIdBytes));
    }
  }
  if (actor.user_id.empty()) {
    const passwd* pw = ::getpwuid(::geteuid());
    actor.user_id = pw != nullptr && pw->pw_name != nullptr && *pw->pw_name != '\0' ? pw->pw_name : "unknown";
  }
  return actor;
}

void check_detail(const std::string& detail, const std::string& what) {
  if (detail.size() > kMaxDetailBytes) {
    throw Error(ErrorCode::kInvalidArgument, what + ": " + std::to_string(detail.size()) + " bytes, at most " +
                                                 std::to_string(kMaxDetailBytes));
  }
}

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::string("unknown");
    return std::string(buf);
  }();
  return name;
}

void stamp(Record& record, bool numbered) {
  record.timestamp = now_rfc3339();
  record.event_id = medinfer::detail::random_uuid();
  record.host = host_name();
  if (numbered) record.sequence = next_sequence();
}

OJson to_json(const Record& r) {
  OJson j;
  j["timestamp"] = r.timestamp;
  j["event_id"] = r.event_id;
  if (!r.request_id.empty()) j["request_id"] = r.request_id;
  j["sequence"] = r.sequence;
  j["event"] = to_string(r.event);
  j["actor"] = {{"user_id", r.actor.user_id}, {"application_id", r.actor.application_id}};
  j["host"] = r.host;
  j["model"] = {{"name", r.model.name}, {"version", r.model.version}, {"sha256", r.model.sha256}};
  j["preprocessing_sha256"] = r.preprocessing_sha256;
  j["input_sha256"] = r.input_sha256;
  if (!r.study_ref.empty() || !r.series_ref.empty() || !r.instance_ref.empty()) {
    j["study_ref"] = r.study_ref;
    j["series_ref"] = r.series_ref;
    j["instance_ref"] = r.instance_ref;
  }
  j["outcome"] = to_string(r.outcome);
  // One finding's fields, as every inference record writes them (the top level: the primary finding).
  auto put_finding = [](OJson& into, const Finding& f) {
    into["raw_score"] = f.raw_score;
    into["probability"] = f.probability;
    into["tier"] = f.tier;
    into["escalate"] = f.escalate;
    if (!f.reason.empty()) into["reason"] = f.reason;
    into["rule"] = to_string(f.rule);
  };
  if (r.outcome == Outcome::kError) {
    if (r.error_code) j["error_code"] = to_string(*r.error_code);
    j["error_message"] = r.error_message;
  } else if (r.event == EventType::kInference) {
    put_finding(j, r.finding);
    if (!r.finding.label.empty()) j["label"] = r.finding.label;
    if (!r.findings.empty()) {
      OJson findings = OJson::array();
      for (const Finding& f : r.findings) {
        OJson one;
        one["label"] = f.label;
        put_finding(one, f);
        findings.push_back(std::move(one));
      }
      j["findings"] = std::move(findings);
    }
  }
  if (r.arm != Arm::kNone) j["arm"] = to_string(r.arm);
  if (!r.input_warnings.empty()) {
    OJson warnings = OJson::array();
    for (const InputWarning& w : r.input_warnings) {
      OJson one;
      one["code"] = w.code;
      one["tag"] = w.tag;
      one["message"] = w.message;
      warnings.push_back(std::move(one));
    }
    j["input_warnings"] = std::move(warnings);
  }
  j["latency_ms"] = std::round(r.latency_ms * 1000.0) / 1000.0;
  if (!r.detail.empty()) j["detail"] = r.detail;
  return j;
}

}  // namespace detail

std::string to_json_line(const Record& r) {
  // Replace invalid UTF-8 rather than throw: an audit line must always be producible.
  return detail::to_json(r).dump(-1, ' ', false, OJson::error_handler_t::replace);
}

namespace {

Record record_from_json(const std::string& line) {
  using medinfer::detail::Json;
  const std::string where = "audit record";
  const Json j = medinfer::detail::parse_json(line, where);
  medinfer::detail::require_object(j, where);
  // Absent fields take the Record's defaults; present ones must have the type the writer gives them.
  auto str_in = [](const Json& obj, const char* key, const std::string& at) -> std::string {
    auto it = obj.find(key);
    if (it == obj.end()) return {};
    if (!it->is_string()) throw Error(ErrorCode::kInvalidArgument, at + ": " + key + ": expected a string");
    return it->get<std::string>();
  };
  auto object_in = [&](const char* key) -> const Json* {
    auto it = j.find(key);
    if (it == j.end()) return nullptr;
    if (!it->is_object()) throw Error(ErrorCode::kInvalidArgument, where + ": " + key + ": expected an object");
    return &*it;
  };
  auto str = [&](const char* key) { return str_in(j, key, where); };
  auto num = [&](const char* key) -> double {
    return j.contains(key) ? medinfer::detail::get_number(j, key, where) : 0.0;
  };
  Record r;
  r.timestamp = str("timestamp");
  r.event_id = str("event_id");
  r.request_id = str("request_id");
  if (j.contains("sequence")) {
    const std::int64_t sequence = medinfer::detail::get_integer(j, "sequence", where);
    if (sequence < 0) throw Error(ErrorCode::kInvalidArgument, where + ": sequence: must not be negative");
    r.sequence = static_cast<std::uint64_t>(sequence);
  }
  const std::string event = str("event");
  bool known = false;
  for (EventType t : {EventType::kInference, EventType::kModelOpened, EventType::kModelRefused,
                      EventType::kConfigurationChange, EventType::kOverride, EventType::kLogVerified,
                      EventType::kCheckpoint, EventType::kDicomTransfer}) {
    if (event == to_string(t)) r.event = t, known = true;
  }
  if (!known) throw Error(ErrorCode::kInvalidArgument, "audit record: event: unknown event '" + event + "'");
  if (const Json* actor = object_in("actor")) {
    r.actor.user_id = str_in(*actor, "user_id", where + ": actor");
    r.actor.application_id = str_in(*actor, "application_id", where + ": actor");
  }
  r.host = str("host");
  if (const Json* model = object_in("model")) {
    r.model.name = str_in(*model, "name", where + ": model");
    r.model.version = str_in(*model, "version", where + ": model");
    r.model.sha256 = str_in(*model, "sha256", where + ": model");
  }
  r.preprocessing_sha256 = str("preprocessing_sha256");
  r.input_sha256 = str("input_sha256");
  r.study_ref = str("study_ref");
  r.series_ref = str("series_ref");
  r.instance_ref = str("instance_ref");
  const std::string outcome = str("outcome");
  bool known_outcome = outcome.empty();  // absent: the default (ok)
  for (Outcome o : {Outcome::kOk, Outcome::kIndeterminate, Outcome::kError}) {
    if (outcome == to_string(o)) r.outcome = o, known_outcome = true;
  }
  if (!known_outcome) throw Error(ErrorCode::kInvalidArgument, where + ": outcome: unknown outcome '" + outcome + "'");
  // A finding's fields, at the top level or in "findings" (older lines lack rule and reason).
  auto finding_in = [&](const Json& obj, const std::string& at, Finding& f) {
    if (obj.contains("raw_score")) f.raw_score = medinfer::detail::get_number(obj, "raw_score", at);
    if (obj.contains("probability")) f.probability = medinfer::detail::get_number(obj, "probability", at);
    f.confidence = std::max(f.probability, 1.0 - f.probability);
    f.tier = str_in(obj, "tier", at);
    f.indeterminate = f.tier == "indeterminate";
    f.escalate = medinfer::detail::get_bool(obj, "escalate", at, false);
    f.reason = str_in(obj, "reason", at);
    const std::string rule = str_in(obj, "rule", at);
    if (!rule.empty()) {
      try {
        f.rule = parse_rule(rule);
      } catch (const Error& e) {
        throw Error(e.code(), at + ": rule: " + e.what());
      }
    }
  };
  finding_in(j, where, r.finding);
  r.finding.label = str("label");
  if (j.contains("findings")) {
    const Json& findings = j.at("findings");
    if (!findings.is_array()) throw Error(ErrorCode::kInvalidArgument, "audit record: findings: expected an array");
    for (std::size_t i = 0; i < findings.size(); ++i) {
      const Json& f = findings[i];
      const std::string at = "audit record: findings[" + std::to_string(i) + "]";
      medinfer::detail::require_object(f, at);
      Finding one;
      one.label = medinfer::detail::get_string(f, "label", at);
      (void)medinfer::detail::get_number(f, "raw_score", at);  // required in a finding
      (void)medinfer::detail::get_number(f, "probability", at);
      (void)medinfer::detail::get_string(f, "tier", at);
      finding_in(f, at, one);
      r.findings.push_back(std::move(one));
    }
  }
  try {
    r.arm = parse_arm(str("arm"));
    const std::string code = str("error_code");
    if (!code.empty()) r.error_code = parse_error_code(code);
  } catch (const Error& e) {
    throw Error(e.code(), where + ": " + e.what());
  }
  r.error_message = str("error_message");
  if (j.contains("input_warnings")) {
    const Json& warnings = j.at("input_warnings");
    if (!warnings.is_array()) throw Error(ErrorCode::kInvalidArgument, where + ": input_warnings: expected an array");
    for (std::size_t i = 0; i < warnings.size(); ++i) {
      const std::string at = where + ": input_warnings[" + std::to_string(i) + "]";
      medinfer::detail::require_object(warnings[i], at);
      r.input_warnings.push_back({medinfer::detail::get_string(warnings[i], "code", at),
                                  medinfer::detail::get_string(warnings[i], "tag", at),
                                  medinfer::detail::get_string(warnings[i], "message", at)});
    }
  }
  r.latency_ms = num("latency_ms");
  r.detail = str("detail");
  return r;
}

}  // namespace

Record from_json_line(const std::string& line) {
  return medinfer::detail::guarded_parse("audit record", [&] { return record_from_json(line); });
}

namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\n': out += "&#10;"; break;
      default: out += c;
    }
  }
  return out;
}

struct DcmCode {
  const char* code;
  const char* meaning;
};

// DICOM PS3.16 CID 400 (Audit Event ID) for each event type, and the action code.
DcmCode event_code(EventType t) {
  switch (t) {
    case EventType::kInference: return {"110103", "DICOM Instances Accessed"};
    case EventType::kModelOpened: return {"110100", "Application Activity"};
    case EventType::kModelRefused: return {"110113", "Security Alert"};
    case EventType::kConfigurationChange:
    case EventType::kOverride: return {"110113", "Security Alert"};
    case EventType::kLogVerified:
    case EventType::kCheckpoint: return {"110101", "Audit Log Used"};
    case EventType::kDicomTransfer: return {"110104", "DICOM Instances Transferred"};
  }
  return {"110100", "Application Activity"};
}

// PS3.15 A.5.1: 0 success, 4 minor failure, 8 serious failure.
// "kCode: message" of an error record.
std::string error_text(const Record& r) {
  return std::string(r.error_code ? to_string(*r.error_code) : "kUnknown") + ": " + r.error_message;
}

int outcome_indicator(const Record& r) {
  if (r.outcome == Outcome::kError) return r.event == EventType::kInference ? 4 : 8;
  return 0;
}

// Every event here is the SDK executing something: PS3.15 action code "E" (Execute).
const char* action_code(EventType) { return "E"; }

}  // namespace

std::string to_atna_xml(const Record& r) {
  const DcmCode ev = event_code(r.event);
  std::string x;
  x += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
  x += "<AuditMessage>";
  x += fmt::format("<EventIdentification EventActionCode=\"{}\" EventDateTime=\"{}\" EventOutcomeIndicator=\"{}\">",
                   action_code(r.event), xml_escape(r.timestamp), outcome_indicator(r));
  x += fmt::format("<EventID csd-code=\"{}\" codeSystemName=\"DCM\" originalText=\"{}\"/>", ev.code, ev.meaning);
  if (r.event == EventType::kModelOpened) {
    x += "<EventTypeCode csd-code=\"110120\" codeSystemName=\"DCM\" originalText=\"Application Start\"/>";
  }
  if (r.outcome == Outcome::kError) {
    x += "<EventOutcomeDescription>" + xml_escape(error_text(r)) + "</EventOutcomeDescription>";
  }
  x += "</EventIdentification>";
  x += fmt::format("<ActiveParticipant UserID=\"{}\" AlternativeUserID=\"{}\" UserIsRequestor=\"true\">",
                   xml_escape(r.actor.user_id.empty() ? "unknown" : r.actor.user_id),
                   xml_escape(r.actor.application_id));
  x += "<RoleIDCode csd-code=\"110153\" codeSystemName=\"DCM\" originalText=\"Source Role ID\"/>";
  x += "</ActiveParticipant>";
  x += fmt::format("<ActiveParticipant UserID=\"medinfer:{}\" UserIsRequestor=\"false\" NetworkAccessPointID=\"{}\" "
                   "NetworkAccessPointTypeCode=\"1\">",
                   xml_escape(r.model.name.empty() ? "sdk" : r.model.name), xml_escape(r.host));
  x += "<RoleIDCode csd-code=\"110151\" codeSystemName=\"DCM\" originalText=\"Application Launcher\"/>";
  x += "</ActiveParticipant>";
  x += fmt::format("<AuditSourceIdentification AuditSourceID=\"{}\">", xml_escape(r.host));
  x += "<AuditSourceTypeCode csd-code=\"4\" codeSystemName=\"DCM\" originalText=\"Application Server Process\"/>";
  x += "</AuditSourceIdentification>";
  if (!r.study_ref.empty()) {
    x += fmt::format("<ParticipantObjectIdentification ParticipantObjectID=\"{}\" ParticipantObjectTypeCode=\"2\" "
                     "ParticipantObjectTypeCodeRole=\"3\">",
                     xml_escape(r.study_ref));
    x += "<ParticipantObjectIDTypeCode csd-code=\"110180\" codeSystemName=\"DCM\" originalText=\"Study Instance UID\"/>";
    x += "</ParticipantObjectIdentification>";
  }
  if (!r.model.sha256.empty()) {
    x += fmt::format("<ParticipantObjectIdentification ParticipantObjectID=\"{}\" ParticipantObjectTypeCode=\"2\" "
                     "ParticipantObjectTypeCodeRole=\"4\">",
                     xml_escape(r.model.sha256));
    x += "<ParticipantObjectIDTypeCode csd-code=\"model-sha256\" codeSystemName=\"medinfer\" "
         "originalText=\"Model package SHA-256\"/>";
    x += fmt::format("<ParticipantObjectName>{} {}</ParticipantObjectName>", xml_escape(r.model.name),
                     xml_escape(r.model.version));
    x += fmt::format("<ParticipantObjectDetail type=\"event_id\" value=\"{}\"/>", xml_escape(r.event_id));
    if (r.event == EventType::kInference && r.outcome != Outcome::kError) {
      x += fmt::format("<ParticipantObjectDetail type=\"probability\" value=\"{}\"/>", r.finding.probability);
      x += fmt::format("<ParticipantObjectDetail type=\"tier\" value=\"{}\"/>", xml_escape(r.finding.tier));
    }
    x += "</ParticipantObjectIdentification>";
  }
  x += "</AuditMessage>";
  return x;
}

std::string to_fhir_audit_event(const Record& r) {
  const DcmCode ev = event_code(r.event);
  OJson j;
  j["resourceType"] = "AuditEvent";
  j["id"] = r.event_id;
  j["type"] = {{"system", "http://dicom.nema.org/resources/ontology/DCM"}, {"code", ev.code}, {"display", ev.meaning}};
  j["subtype"] = OJson::array({{{"system", "urn:medinfer:audit-event"}, {"code", to_string(r.event)}}});
  j["action"] = action_code(r.event);
  j["recorded"] = r.timestamp;
  j["outcome"] = std::to_string(outcome_indicator(r));
  if (r.outcome == Outcome::kError) j["outcomeDesc"] = error_text(r);
  OJson agent;
  agent["who"] = {{"identifier", {{"value", r.actor.user_id.empty() ? "unknown" : r.actor.user_id}}}};
  if (!r.actor.application_id.empty()) agent["altId"] = r.actor.application_id;
  agent["requestor"] = true;
  j["agent"] = OJson::array({agent});
  j["source"] = {{"site", r.host}, {"observer", {{"display", "medinfer"}}},
                 {"type", OJson::array({{{"system", "http://terminology.hl7.org/CodeSystem/security-source-type"},
                                         {"code", "4"}, {"display", "Application Server"}}})}};
  OJson entities = OJson::array();
  if (!r.study_ref.empty()) {
    entities.push_back({{"what", {{"identifier", {{"system", "urn:medinfer:study-ref"}, {"value", r.study_ref}}}}},
                        {"type", {{"system", "http://terminology.hl7.org/CodeSystem/audit-entity-type"},
                                  {"code", "2"}, {"display", "System Object"}}}});
  }
  if (!r.model.sha256.empty()) {
    OJson detail = OJson::array({{{"type", "model_version"}, {"valueString", r.model.version}}});
    if (r.event == EventType::kInference && r.outcome != Outcome::kError) {
      detail.push_back({{"type", "probability"}, {"valueString", fmt::format("{}", r.finding.probability)}});
      detail.push_back({{"type", "tier"}, {"valueString", r.finding.tier}});
      detail.push_back({{"type", "escalate"}, {"valueString", r.finding.escalate ? "true" : "false"}});
      detail.push_back({{"type", "input_sha256"}, {"valueString", r.input_sha256}});
    }
    entities.push_back({{"what", {{"identifier", {{"system", "urn:medinfer:model-sha256"}, {"value", r.model.sha256}}}}},
                        {"name", r.model.name},
                        {"detail", detail}});
  }
  if (!entities.empty()) j["entity"] = entities;
  return j.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

}  // namespace medinfer::audit
