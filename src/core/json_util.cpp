#include "core/json_util.hpp"

#include <medinfer/error.hpp>

#include <cmath>
#include <set>
#include <vector>
#include <new>
#include <stdexcept>

namespace medinfer::detail {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, field + ": " + what);
}

const char* type_name(const Json& v) { return v.type_name(); }

}  // namespace

std::string field_path(const std::string& where, const char* key) {
  // "manifest.json" + "name" -> "manifest.json: name"; "manifest.json: risk" + "tiers" -> "... risk.tiers"
  if (where.empty()) return key;
  const bool is_file = where.size() >= 5 && where.compare(where.size() - 5, 5, ".json") == 0;
  return where + (is_file ? ": " : ".") + key;
}

bool get_bool(const Json& obj, const char* key, const std::string& where, bool fallback) {
  require_object(obj, where);
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_boolean()) fail(field_path(where, key), "expected true or false");
  return it->get<bool>();
}

std::pair<double, double> get_number_pair(const Json& obj, const char* key, const std::string& where,
                                          const char* form) {
  const Json& v = require_member(obj, key, where);
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number()) {
    fail(field_path(where, key), std::string("expected ") + form + " (two numbers)");
  }
  return {v[0].get<double>(), v[1].get<double>()};
}

void reject_unknown_fields(const Json& obj, std::initializer_list<const char*> known, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) fail(field_path(where, it.key().c_str()), "unknown field");
  }
}

void rethrow_with_location(const Error& e, const std::string& where, const char* section) {
  const auto pos = where.rfind(section);
  throw Error(e.code(), (pos == std::string::npos ? where + ": " : where.substr(0, pos)) + e.what());
}

void rethrow_as_error(const std::string& where) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, where + ": malformed value (" + e.what() + ")");
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kResourceLimit, where + ": out of memory");
  } catch (const std::logic_error& e) {
    throw Error(ErrorCode::kInvalidArgument, where + ": malformed value (" + e.what() + ")");
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, where + ": " + e.what());
  } catch (...) {
    throw Error(ErrorCode::kInternal, where + ": unknown exception");
  }
}

Json parse_json(std::string_view text, const std::string& where) {
  // A key named twice in one object is refused, naming its path: with "last one wins" a manifest could
  // show a reviewer one value and the parser another (a second "escalation_threshold", a second hash).
  struct Frame {
    bool object = true;
    std::set<std::string> keys;
    std::string key;
    std::size_t index = 0;
  };
  std::vector<Frame> stack;
  auto element_done = [&] {
    if (!stack.empty() && !stack.back().object) ++stack.back().index;
  };
  auto path_to = [&](const std::string& key) {
    std::string path;
    for (std::size_t i = 0; i + 1 < stack.size(); ++i) {
      const Frame& f = stack[i];
      path += f.object ? (path.empty() ? "" : ".") + f.key : "[" + std::to_string(f.index) + "]";
    }
    return path + (path.empty() ? "" : ".") + key;
  };
  const Json::parser_callback_t no_duplicates = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: stack.push_back(Frame{true, {}, {}, 0}); break;
      case Json::parse_event_t::array_start: stack.push_back(Frame{false, {}, {}, 0}); break;
      case Json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (!stack.back().keys.insert(key).second) {
          throw Error(ErrorCode::kInvalidArgument,
                      where + ": " + path_to(key) + ": duplicate key (each field may appear once in an object)");
        }
        stack.back().key = std::move(key);
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        stack.pop_back();
        element_done();
        break;
      case Json::parse_event_t::value: element_done(); break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), no_duplicates);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorCode::kInvalidArgument,
                where + ": not valid JSON at byte " + std::to_string(e.byte) + " (" + e.what() + ")");
  }
}

void require_object(const Json& value, const std::string& where) {
  if (!value.is_object()) fail(where, std::string("expected an object, got ") + type_name(value));
}

const Json& require_member(const Json& obj, const char* key, const std::string& where) {
  require_object(obj, where);
  auto it = obj.find(key);
  if (it == obj.end()) fail(field_path(where, key), "missing");
  return *it;
}

double get_number(const Json& obj, const char* key, const std::string& where) {
  const Json& v = require_member(obj, key, where);
  if (!v.is_number()) fail(field_path(where, key), std::string("expected a number, got ") + type_name(v));
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(field_path(where, key), "must be finite");
  return d;
}

std::int64_t get_integer(const Json& obj, const char* key, const std::string& where) {
  const Json& v = require_member(obj, key, where);
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<std::int64_t>(d);
  }
  fail(field_path(where, key), std::string("expected an integer, got ") + (v.is_number() ? v.dump() : type_name(v)));
}

std::string get_string(const Json& obj, const char* key, const std::string& where) {
  const Json& v = require_member(obj, key, where);
  if (!v.is_string()) fail(field_path(where, key), std::string("expected a string, got ") + type_name(v));
  std::string s = v.get<std::string>();
  if (s.empty()) fail(field_path(where, key), "must not be empty");
  return s;
}

}  // namespace medinfer::detail
