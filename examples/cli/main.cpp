// medinfer: the command-line host. Uses only the public API (<medinfer/medinfer.hpp>).
//
//   medinfer predict --model DIR [--audit-log FILE] [--threads N] FILE...
//   medinfer version [--json]
//   medinfer --help
//
// predict prints one JSON object per line per input, in input order: a result, or
// {"input": ..., "error": {"code": ..., "message": ...}}. Exit status: 0 when every input has a
// result, 1 when any input (or the model) failed, 2 for a usage error.
#include <medinfer/medinfer.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: medinfer <command> [options]

commands:
  predict --model DIR [--audit-log FILE] [--threads N] FILE...
      Runs the model package in DIR on each DICOM FILE and prints one JSON line per input:
        {"input", "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate",
         "reason" (when indeterminate), "model": {"name", "version", "sha256"}, "input_sha256",
         "latency_ms"}
      or, for an input that failed, {"input", "error": {"code", "message"}}.
      --audit-log FILE   append one JSON Lines audit record per prediction to FILE
      --threads N        LibTorch intra-op threads (default: LibTorch's own setting)
      Exit status: 0 all inputs succeeded, 1 any input or the model failed, 2 usage error.
  version [--json]
      Prints the medinfer version and the LibTorch, OpenCV and DCMTK versions it was built with.
  --help, -h, help
      Prints this text.
)";

using Json = nlohmann::ordered_json;

[[noreturn]] void usage_error(const std::string& message) {
  throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, message + " (see 'medinfer --help')");
}

void print_line(const Json& j) {
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n' << std::flush;
}

Json error_json(const std::string& input, const medinfer::Error& e) {
  return Json{{"input", input}, {"error", {{"code", medinfer::to_string(e.code())}, {"message", e.what()}}}};
}

Json result_json(const std::string& input, const medinfer::Result& r) {
  Json j;
  j["input"] = input;
  j["probability"] = r.probability;
  j["raw_score"] = r.raw_score;
  j["confidence"] = r.confidence;
  j["tier"] = r.tier;
  j["escalate"] = r.escalate;
  j["indeterminate"] = r.indeterminate;
  if (r.indeterminate) j["reason"] = r.reason;
  j["model"] = {{"name", r.model.name}, {"version", r.model.version}, {"sha256", r.model.sha256}};
  j["input_sha256"] = r.input_sha256;
  j["latency_ms"] = r.latency_ms;
  return j;
}

int parse_threads(const std::string& value) {
  try {
    std::size_t used = 0;
    const int n = std::stoi(value, &used);
    if (used == value.size() && n >= 0 && n <= 1024) return n;
  } catch (const std::exception&) {
  }
  usage_error("--threads: '" + value + "' is not an integer in 0..1024");
}

int run_predict(const std::vector<std::string>& args) {
  std::optional<std::string> model_dir, audit_log;
  medinfer::PipelineOptions options;
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= args.size()) usage_error(std::string(flag) + " needs a value");
      return args[++i];
    };
    if (a == "--model") {
      model_dir = value("--model");
    } else if (a == "--audit-log") {
      audit_log = value("--audit-log");
    } else if (a == "--threads") {
      options.engine.intra_op_threads = parse_threads(value("--threads"));
    } else if (a == "--") {
      inputs.insert(inputs.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("predict: unknown option '" + a + "'");
    } else {
      inputs.push_back(a);
    }
  }
  if (!model_dir) usage_error("predict: --model DIR is required");
  if (inputs.empty()) usage_error("predict: no input files");

  std::optional<medinfer::Pipeline> pipeline;
  try {
    if (audit_log) options.audit_sink = medinfer::audit::FileSink::open(*audit_log);
    pipeline.emplace(medinfer::Pipeline::open(*model_dir, options));
  } catch (const medinfer::Error& e) {
    // Nothing is lost: every input still gets a line, carrying the reason it has no result.
    std::cerr << "medinfer: " << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
    for (const auto& input : inputs) print_line(error_json(input, e));
    return 1;
  }
  int status = 0;
  for (const auto& input : inputs) {
    try {
      print_line(result_json(input, pipeline->predict(input)));
    } catch (const medinfer::Error& e) {
      print_line(error_json(input, e));
      status = 1;
    }
  }
  return status;
}

int run_version(const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json") {
      json = true;
    } else {
      usage_error("version: unknown option '" + a + "'");
    }
  }
  const medinfer::BuildInfo info = medinfer::build_info();
  if (json) {
    print_line(Json{{"version", info.version},
                    {"libtorch", info.libtorch_version},
                    {"opencv", info.opencv_version},
                    {"dcmtk", info.dcmtk_version},
                    {"compiler", info.compiler},
                    {"cuda_compiled", info.cuda_compiled},
                    {"cuda_available", info.cuda_available}});
  } else {
    std::cout << "medinfer " << info.version << "\n"
              << "  LibTorch " << info.libtorch_version << " (CUDA "
              << (info.cuda_compiled ? (info.cuda_available ? "available" : "compiled, no device") : "not compiled")
              << ")\n  OpenCV " << info.opencv_version << "\n  DCMTK " << info.dcmtk_version << "\n  "
              << info.compiler << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty()) {
      std::cerr << kUsage;
      return 2;
    }
    const std::string command = args.front();
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (command == "predict") return run_predict(rest);
    if (command == "version" || command == "--version") return run_version(rest);
    usage_error("unknown command '" + command + "'");
  } catch (const medinfer::Error& e) {
    std::cerr << "medinfer: " << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
    return e.code() == medinfer::ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "medinfer: unexpected error: " << e.what() << '\n';
    return 1;
  }
}
