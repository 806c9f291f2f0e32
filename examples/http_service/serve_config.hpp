// medinfer-serve's configuration: a JSON file, then environment overrides (MEDINFER_SERVE_<KEY>), then
// the command line; checked once at start, every error naming the key and where it came from.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

struct ServeConfig {
  std::string model;                 ///< "model": the package directory (required)
  std::string listen = "127.0.0.1:8080";  ///< "listen": HOST:PORT
  std::string api_keys_file;         ///< "api_keys_file": one key per line (also $MEDINFER_API_KEYS)
  std::string admin_keys_file;       ///< "admin_keys_file": keys for /admin/* (none: admin endpoints off)
  /// "models_root": /admin/reload's {"model": NAME} loads DIR/NAME (NAME one path component, resolved
  /// inside DIR); empty: only the configured model can be reloaded
  std::string models_root;
  std::string tls_cert, tls_key;     ///< "tls_cert", "tls_key": PEM files; both or neither
  std::string audit_log, audit_key, audit_witness;  ///< as `medinfer predict`'s --audit-*
  std::string sr_dir;                ///< "sr_dir": write each study's DICOM SR here (none: no SR)
  std::size_t max_body_bytes = 256u << 20;  ///< "max_body_bytes": larger requests get 413
  int workers = 0;                   ///< "workers": predictions running at once (0: one per core)
  int queue_depth = 64;              ///< "queue_depth": requests waiting beyond them; more get 503
  /// "http_threads": connections served at once (each open connection, idle keep-alive ones included,
  /// holds one: above a load balancer's upstream keepalive pool plus its concurrency)
  int http_threads = 128;
  /// "max_batch_size": concurrent single predictions merged into one model run by the library's
  /// dynamic batcher (1: off, the default: for the small demo model its 2 ms window costs more than
  /// batching gains, measured in docs/serve.md; a heavier model under concurrency gains from 4-8)
  int max_batch_size = 1;
  /// "max_batch_delay_us": how long the batcher waits to fill a batch after its oldest request arrived
  int max_batch_delay_us = 2000;
  int drain_seconds = 0;             ///< "drain_seconds": after SIGTERM, not ready this long before closing

  std::vector<std::string> api_keys, admin_keys;  // loaded from the files / environment
  std::string host;
  int port = 0;
};

/// Reads `file` (may be empty), applies `environment` (MEDINFER_SERVE_<KEY> entries) and `overrides`
/// (the command line's, by key), and validates. Throws std::invalid_argument naming the key and its
/// source ("config.json: workers: expected an integer 1..256").
ServeConfig load_config(const std::string& file, const std::map<std::string, std::string>& environment,
                        const std::map<std::string, std::string>& overrides);

/// The effective configuration as JSON, keys redacted (what --check-config prints).
std::string describe(const ServeConfig& config);
