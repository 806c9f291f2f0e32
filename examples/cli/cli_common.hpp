// Helpers shared by the CLI's commands. The CLI is a thin host: argument parsing (CLI11, so --help is
// generated from the same definitions the parser uses), printing, and calls into the library.
#pragma once

#include <medinfer/error.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using Json = nlohmann::ordered_json;

/// What a subcommand's callback leaves for main to run once parsing succeeded; returns the exit status.
using Runner = std::function<int()>;

/// A usage error the parser cannot express (options that need each other): exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] inline void usage_error(const std::string& message) { throw UsageError(message); }

/// {"input", "error": {"code", "message"}}: how every command reports an input that failed.
inline Json error_json(const std::string& input, const medinfer::Error& e) {
  return Json{{"input", input}, {"error", {{"code", medinfer::to_string(e.code())}, {"message", e.what()}}}};
}

inline void print_line(const Json& j) {
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n' << std::flush;
}

/// "medinfer: kCode: message" on stderr.
inline void report_error(const medinfer::Error& e) {
  std::cerr << "medinfer: " << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
}

/// A whole text file (keys); kNotFound naming the path when it cannot be read, kInvalidArgument for a
/// directory.
std::string read_text_file(const std::string& path);

/// The --trusted-key files, each checked to be an Ed25519 public key: an error names the file.
std::vector<std::string> read_trusted_keys(const std::vector<std::string>& paths);

/// Each command adds its subcommand (and its own subcommands) to the root; its callback sets `run`.
void add_predict_command(CLI::App& app, Runner& run);
void add_audit_command(CLI::App& app, Runner& run);
void add_version_command(CLI::App& app, Runner& run);
void add_preprocess_command(CLI::App& app, Runner& run);
void add_package_command(CLI::App& app, Runner& run);
void add_inspect_command(CLI::App& app, Runner& run);
void add_calibrate_command(CLI::App& app, Runner& run);
