#include "serve_config.hpp"

#include "../common/settings.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <stdexcept>
#include <thread>

namespace {

using Json = nlohmann::ordered_json;

const std::vector<std::string> kKeys = {"model", "listen", "api_keys_file", "admin_keys_file", "models_root", "tls_cert", "tls_key",
                                        "audit_log", "audit_key", "audit_witness", "sr_dir", "max_body_bytes",
                                        "workers", "queue_depth", "http_threads", "max_batch_size", "max_batch_delay_us",
                                        "drain_seconds"};

using host::bad_setting;

[[noreturn]] void bad(const std::string& where, const std::string& key, const std::string& why) {
  bad_setting(where, key, why);
}

// One setting into its config field.
void set(ServeConfig& c, const std::string& key, const host::Setting& v) {
  auto text = [&] { return host::setting_text(key, v); };
  auto integer = [&](long long lo, long long hi) { return host::setting_integer(key, v, lo, hi); };
  if (key == "model") c.model = text();
  else if (key == "listen") c.listen = text();
  else if (key == "api_keys_file") c.api_keys_file = text();
  else if (key == "admin_keys_file") c.admin_keys_file = text();
  else if (key == "models_root") c.models_root = text();
  else if (key == "tls_cert") c.tls_cert = text();
  else if (key == "tls_key") c.tls_key = text();
  else if (key == "audit_log") c.audit_log = text();
  else if (key == "audit_key") c.audit_key = text();
  else if (key == "audit_witness") c.audit_witness = text();
  else if (key == "sr_dir") c.sr_dir = text();
  else if (key == "max_body_bytes") c.max_body_bytes = static_cast<std::size_t>(integer(1024, 1ll << 32));
  else if (key == "workers") c.workers = static_cast<int>(integer(0, 256));
  else if (key == "queue_depth") c.queue_depth = static_cast<int>(integer(0, 100000));
  else if (key == "http_threads") c.http_threads = static_cast<int>(integer(2, 1024));
  else if (key == "max_batch_size") c.max_batch_size = static_cast<int>(integer(1, 256));
  else if (key == "max_batch_delay_us") c.max_batch_delay_us = static_cast<int>(integer(0, 1000000));
  else if (key == "drain_seconds") c.drain_seconds = static_cast<int>(integer(0, 3600));
}

std::vector<std::string> read_keys(const std::string& where, const std::string& text) {
  std::vector<std::string> keys;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line = line.substr(start);
    if (line.size() < 16) bad(where, "api key", "a key has " + std::to_string(line.size()) + " characters; at least 16 are needed");
    keys.push_back(line);
  }
  return keys;
}

std::string read_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad("configuration", key, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

ServeConfig load_config(const std::string& file, const std::map<std::string, std::string>& environment,
                        const std::map<std::string, std::string>& overrides) {
  ServeConfig c;
  for (const auto& [key, setting] : host::merge_settings(file, "MEDINFER_SERVE_", kKeys, environment, overrides)) {
    set(c, key, setting);
  }
  if (c.workers == 0) c.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (c.model.empty()) bad("configuration", "model", "required (--model DIR, \"model\" or $MEDINFER_SERVE_MODEL)");
  const std::size_t colon = c.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) bad("configuration", "listen", "expected HOST:PORT, not '" + c.listen + "'");
  c.host = c.listen.substr(0, colon);
  try {
    std::size_t used = 0;
    c.port = std::stoi(c.listen.substr(colon + 1), &used);
    if (used != c.listen.size() - colon - 1 || c.port < 0 || c.port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    bad("configuration", "listen", "expected HOST:PORT with a port 0..65535, not '" + c.listen + "'");
  }
  if (!c.models_root.empty() && !std::filesystem::is_directory(c.models_root)) {
    bad("configuration", "models_root", "no such folder: " + c.models_root);
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) bad("configuration", "tls_cert", "tls_cert and tls_key go together");
  for (const auto& [key, path] : {std::pair<const char*, const std::string&>{"tls_cert", c.tls_cert}, {"tls_key", c.tls_key}}) {
    if (!path.empty() && !std::filesystem::is_regular_file(path)) bad("configuration", key, "no such file: " + path);
  }
  if (c.audit_log.empty() && (!c.audit_key.empty() || !c.audit_witness.empty())) {
    bad("configuration", "audit_key", "audit_key and audit_witness need audit_log");
  }
  if (!c.api_keys_file.empty()) c.api_keys = read_keys(c.api_keys_file, read_file("api_keys_file", c.api_keys_file));
  const auto env_keys = environment.find("MEDINFER_API_KEYS");
  if (env_keys != environment.end()) {
    std::string text = env_keys->second;
    for (char& ch : text) if (ch == ',') ch = '\n';
    for (auto& k : read_keys("$MEDINFER_API_KEYS", text)) c.api_keys.push_back(std::move(k));
  }
  if (!c.admin_keys_file.empty()) c.admin_keys = read_keys(c.admin_keys_file, read_file("admin_keys_file", c.admin_keys_file));
  return c;
}

std::string describe(const ServeConfig& c) {
  Json j{{"model", c.model},
         {"listen", c.listen},
         {"api_keys", c.api_keys.size()},
         {"admin_keys", c.admin_keys.size()},
         {"models_root", c.models_root},
         {"tls", !c.tls_cert.empty()},
         {"audit_log", c.audit_log},
         {"audit_chained", !c.audit_key.empty()},
         {"audit_witness", c.audit_witness},
         {"sr_dir", c.sr_dir},
         {"max_body_bytes", c.max_body_bytes},
         {"workers", c.workers},
         {"queue_depth", c.queue_depth},
         {"http_threads", c.http_threads},
         {"max_batch_size", c.max_batch_size},
         {"max_batch_delay_us", c.max_batch_delay_us},
         {"drain_seconds", c.drain_seconds}};
  return j.dump();
}
