// The hosts' settings (medinfer-serve, medinfer-dicom-node): a JSON file, then environment overrides
// PREFIX<KEY> (upper case), then the command line; each value remembers where it came from, so an
// error names the key and its source ("node.json: port: expected an integer 1..65535").
#pragma once

#include <nlohmann/json.hpp>

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace host {

struct Setting {
  nlohmann::ordered_json value;
  std::string where;  ///< the file, "$PREFIX_KEY" or "--key"
};

[[noreturn]] inline void bad_setting(const std::string& where, const std::string& key, const std::string& why) {
  throw std::invalid_argument(where + ": " + key + ": " + why);
}

/// The settings of `keys` from the three sources, later ones winning. Throws std::invalid_argument for
/// an unreadable or invalid file and for a key the host does not know (naming the known ones).
inline std::map<std::string, Setting> merge_settings(const std::string& file, const std::string& env_prefix,
                                                     const std::vector<std::string>& keys,
                                                     const std::map<std::string, std::string>& environment,
                                                     const std::map<std::string, std::string>& overrides) {
  std::map<std::string, Setting> out;
  auto known = [&](const std::string& key, const std::string& where) {
    for (const auto& k : keys) {
      if (k == key) return;
    }
    std::string list;
    for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
    bad_setting(where, key, "unknown key (known: " + list + ")");
  };
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::invalid_argument(file + ": cannot read the configuration file");
    std::ostringstream text;
    text << in.rdbuf();
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(file + ": not valid JSON: " + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument(file + ": expected a JSON object of settings");
    for (const auto& [key, value] : j.items()) {
      known(key, file);
      out[key] = {value, file};
    }
  }
  for (const auto& key : keys) {
    std::string name = env_prefix;
    for (char c : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const auto it = environment.find(name);
    if (it != environment.end()) out[key] = {it->second, "$" + name};
  }
  for (const auto& [key, value] : overrides) {
    known(key, "--" + key);
    out[key] = {value, "--" + key};
  }
  return out;
}

inline std::string setting_text(const std::string& key, const Setting& s) {
  if (!s.value.is_string()) bad_setting(s.where, key, "expected a string");
  return s.value.get<std::string>();
}

/// An integer given as a JSON number or as text (environment, command line), in [lo, hi].
inline long long setting_integer(const std::string& key, const Setting& s, long long lo, long long hi) {
  const std::string range = "expected an integer " + std::to_string(lo) + ".." + std::to_string(hi);
  long long n = 0;
  if (s.value.is_number_integer()) {
    n = s.value.get<long long>();
  } else if (s.value.is_string()) {
    const std::string t = s.value.get<std::string>();
    std::size_t used = 0;
    try {
      n = std::stoll(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != t.size()) bad_setting(s.where, key, range);
  } else {
    bad_setting(s.where, key, range);
  }
  if (n < lo || n > hi) bad_setting(s.where, key, range);
  return n;
}

/// A number (JSON or text) in [lo, hi].
inline double setting_number(const std::string& key, const Setting& s, double lo, double hi) {
  const std::string range = "expected a number " + std::to_string(lo) + ".." + std::to_string(hi);
  double v = 0;
  if (s.value.is_number()) {
    v = s.value.get<double>();
  } else if (s.value.is_string()) {
    const std::string t = s.value.get<std::string>();
    std::size_t used = 0;
    try {
      v = std::stod(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != t.size()) bad_setting(s.where, key, range);
  } else {
    bad_setting(s.where, key, range);
  }
  if (!(v >= lo && v <= hi)) bad_setting(s.where, key, range);
  return v;
}

/// The process environment as a map.
inline std::map<std::string, std::string> environment_of(char** env) {
  std::map<std::string, std::string> out;
  for (char** e = env; *e != nullptr; ++e) {
    const std::string kv = *e;
    const std::size_t eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace host
