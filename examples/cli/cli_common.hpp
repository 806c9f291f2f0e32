// Helpers shared by the CLI's commands.
#pragma once

#include <medinfer/error.hpp>

#include <nlohmann/json.hpp>

#include <iostream>
#include <string>
#include <vector>

using Json = nlohmann::ordered_json;

[[noreturn]] inline void usage_error(const std::string& message) {
  throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, message + " (see 'medinfer --help')");
}

/// {"input", "error": {"code", "message"}}: how every command reports an input that failed.
inline Json error_json(const std::string& input, const medinfer::Error& e) {
  return Json{{"input", input}, {"error", {{"code", medinfer::to_string(e.code())}, {"message", e.what()}}}};
}

inline void print_line(const Json& j) {
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n' << std::flush;
}

/// The value after the option at args[i] (advancing i past it); a usage error naming the option when
/// there is none.
inline std::string option_value(const std::vector<std::string>& args, std::size_t& i) {
  if (i + 1 >= args.size()) usage_error(args[i] + " needs a value");
  return args[++i];
}

/// `medinfer preprocess ...`
int run_preprocess(const std::vector<std::string>& args);

/// A whole text file (keys); kNotFound naming the path when it cannot be read.
std::string read_text_file(const std::string& path);

/// `medinfer package ...`
int run_package(const std::vector<std::string>& args);

/// `medinfer inspect ...`
int run_inspect(const std::vector<std::string>& args);

/// `medinfer calibrate ...`
int run_calibrate(const std::vector<std::string>& args);
