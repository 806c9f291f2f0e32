// medinfer: the command-line host. Uses only the public API (<medinfer/medinfer.hpp>).
//
//   medinfer predict --model DIR [--audit-log FILE [--audit-key KEYFILE] [--audit-mode strict|buffered]
//                    [--audit-user ID]] [--threads N] FILE...
//   medinfer audit verify FILE [--key KEYFILE] [--allow-unclosed]
//   medinfer audit export --format atna|fhir FILE
//   medinfer version [--json]
//   medinfer --help
//
// predict prints one JSON object per line per input, in input order: a result, or
// {"input": ..., "error": {"code": ..., "message": ...}}. Exit status: 0 when every input has a
// result, 1 when any input (or the model) failed, 2 for a usage error.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: medinfer <command> [options]

commands:
  predict --model DIR [--audit-log FILE [--audit-key KEYFILE] [--audit-mode strict|buffered]
          [--audit-user ID]] [--threads N] [--trusted-key KEY.pub]... [--require-signature] FILE...
      Runs the model package in DIR on each DICOM FILE and prints one JSON line per input:
        {"input", "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate",
         "reason" (when indeterminate), "rule", "operating_point": {"name", "positive"} (when the
         policy has one), "prediction_set" (with a conformal rule), "label", "findings": [{"label",
         "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate", "rule",
         "reason" (when indeterminate)}, one per label], "model": {"name", "version", "sha256"},
         "input_sha256", "latency_ms"}; the top-level score is the primary finding's.
      or, for an input that failed, {"input", "error": {"code", "message"}}.
      --audit-log FILE   append one JSON Lines audit record per prediction to FILE
      --audit-key KEYFILE  make FILE a tamper-evident HMAC-SHA256 chain under the keys in KEYFILE
                         (lines "EPOCH HEX" or "HEX"); default: $MEDINFER_AUDIT_KEY when set, else a
                         plain JSON Lines log. With a key, studies are referenced by keyed pseudonyms.
      --audit-mode M     strict (default: each record fsync'd before the result is printed) or
                         buffered (a writer thread; dropped records are reported on stderr)
      --audit-user ID    the user id recorded as the actor (default: $USER)
      --threads N        LibTorch intra-op threads (default: LibTorch's own setting)
      --trusted-key KEY.pub  an Ed25519 public key (PEM) trusted to sign packages (repeatable): a
                         signed package must verify against one of them
      --require-signature  refuse an unsigned package (or one signed by an untrusted key)
      Exit status: 0 all inputs succeeded, 1 any input or the model failed, 2 usage error.
  audit verify FILE [--key KEYFILE] [--allow-unclosed]
      Verifies a chained audit log: "OK: N records verified" (exit 0), or names the first record that
      was modified, deleted, inserted or reordered, or a torn last line (exit 1). A log without its
      closing checkpoint fails unless --allow-unclosed. Key: KEYFILE or $MEDINFER_AUDIT_KEY.
  audit export --format atna|fhir FILE
      Prints each record of FILE as a DICOM PS3.15 A.5 audit message (IHE ATNA, one XML document per
      line) or a FHIR R4 AuditEvent (one JSON resource per line).
  package keygen --out KEY
      Writes a new Ed25519 signing key to KEY (private, mode 0600) and KEY.pub (give it to hosts).
  package create --model FILE.pt --manifest M.json --out DIR
      Writes a package: the model and every file M.json's "files" names, and manifest.json with each
      file's SHA-256 (then verifies it).
  package sign DIR --key KEY
      Signs DIR's manifest.json (Ed25519), writing DIR/manifest.sig; prints {"package", "key_id"}.
  package verify DIR [--trusted-key KEY.pub]... [--require-signature]
      Checks every hash and the signature: {"package", "ok": true, "name", "version", "sha256",
      "signed_by"} (exit 0), or {"package", "ok": false, "error": {"code", "message"}} (exit 1).
  inspect FILE... [--json]
      Describes each DICOM file and decodes all its frames. With --json, one object per file:
        {"input", "transfer_syntax_uid", "transfer_syntax_name", "sop_class_uid", "modality", "rows",
         "columns", "frames", "samples_per_pixel", "photometric_interpretation", "bits_allocated",
         "bits_stored", "pixel_representation", "stored": {"dtype", "shape", "photometric", "min",
         "max", "mean", "sha256"}}
      where "stored" describes the decoded stored values of all frames, shaped (frames, rows,
      columns, samples) (docs/dicom.md), or {"input", "error": {"code", "message"}}.
      Exit status: 0 all files decoded, 1 any file failed, 2 usage error.
  preprocess --model DIR FILE --out OUT.npy
      Writes the exact float32 tensor the package's model would receive for FILE (NumPy .npy).
  calibrate fit --scores FILE.csv --method M --out calibration.json [--report report.json]
                [--plot reliability.png] [--bins N] [--threshold T] [--target-sensitivity S]
                [--delta D] [--alpha A] [--bootstrap N]
      Fits a calibrator (M: temperature, platt, isotonic, histogram, beta, or auto: the lowest
      5-fold cross-validated ECE) on raw scores with labels
      (CSV header "score,label"); the report holds the parameters, metrics before and after, an
      operating point for the target sensitivity and a split-conformal threshold.
  calibrate fit --model DIR --labels labels.csv [--method M] [--out NEWDIR] [report/plot options]
      Runs the package in DIR on labelled DICOM files (CSV header "path,label"), fits (default
      method: auto), and writes the next package version (default NEWDIR: DIR-<version>) carrying
      the calibration and calibration_report.json.
  calibrate apply --calibration calibration.json --scores FILE.csv [--report R.json] [--plot P.png]
      Prints one calibrated probability per row of FILE.csv (header "score" or "score,label"); with
      labels, --report/--plot evaluate the calibration on them (held-out metrics before and after).
  version [--json]
      Prints the medinfer version and the LibTorch, OpenCV and DCMTK versions it was built with.
  --help, -h, help
      Prints this text.
)";


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
  j["rule"] = r.rule;
  if (!r.operating_point.empty()) {
    j["operating_point"] = {{"name", r.operating_point}, {"positive", r.operating_point_positive}};
  }
  if (!r.prediction_set.empty() || r.rule == "conformal_set") j["prediction_set"] = r.prediction_set;
  j["label"] = r.label;
  Json findings = Json::array();
  for (const medinfer::Finding& f : r.findings) {
    Json one = {{"label", f.label},           {"probability", f.probability}, {"raw_score", f.raw_score},
                {"confidence", f.confidence}, {"tier", f.tier},               {"escalate", f.escalate},
                {"indeterminate", f.indeterminate}, {"rule", f.rule}};
    if (f.indeterminate) one["reason"] = f.reason;
    findings.push_back(std::move(one));
  }
  j["findings"] = std::move(findings);
  j["model"] = {{"name", r.model.name}, {"version", r.model.version}, {"sha256", r.model.sha256}};
  if (!r.arm.empty()) j["arm"] = r.arm;
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
  medinfer::PipelineOptions options;
  std::optional<std::string> model_dir, audit_log, audit_key;
  std::string audit_mode = "strict";
  const char* user = std::getenv("USER");
  options.actor.user_id = user ? user : "";
  options.actor.application_id = "medinfer-cli";
  std::vector<std::string> inputs;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&] { return option_value(args, i); };
    if (a == "--model") {
      model_dir = value();
    } else if (a == "--audit-log") {
      audit_log = value();
    } else if (a == "--audit-key") {
      audit_key = value();
    } else if (a == "--audit-mode") {
      audit_mode = value();
      if (audit_mode != "strict" && audit_mode != "buffered") {
        usage_error("--audit-mode: '" + audit_mode + "' is not strict or buffered");
      }
    } else if (a == "--audit-user") {
      options.actor.user_id = value();
    } else if (a == "--threads") {
      options.engine.intra_op_threads = parse_threads(value());
    } else if (a == "--trusted-key") {
      options.package.trusted_public_keys.push_back(read_text_file(value()));
    } else if (a == "--require-signature") {
      options.package.require_signature = true;
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
  if (!audit_log && (audit_key || audit_mode != "strict")) usage_error("predict: --audit-key/--audit-mode need --audit-log");

  std::optional<medinfer::Pipeline> pipeline;
  std::shared_ptr<medinfer::audit::ChainedFileSink> chain;
  try {
    if (audit_log) {
      std::optional<medinfer::audit::Keyring> keys;
      if (audit_key) {
        keys = medinfer::audit::Keyring::load_file(*audit_key);
      } else if (std::getenv("MEDINFER_AUDIT_KEY")) {
        keys = medinfer::audit::Keyring::from_environment();
      }
      if (keys) {
        medinfer::audit::ChainOptions chain_options;
        chain_options.durability =
            audit_mode == "buffered" ? medinfer::audit::Durability::kBuffered : medinfer::audit::Durability::kStrict;
        chain = medinfer::audit::ChainedFileSink::open(*audit_log, *keys, chain_options);
        options.audit_sink = chain;
        options.pseudonym_key = medinfer::audit::derive_pseudonym_key(*keys);
      } else {
        if (audit_mode != "strict") usage_error("predict: --audit-mode buffered needs an audit key");
        options.audit_sink = medinfer::audit::FileSink::open(*audit_log);
      }
    }
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
  if (chain) {
    try {
      chain->close();
    } catch (const medinfer::Error& e) {
      std::cerr << "medinfer: " << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
      status = 1;
    }
    if (chain->dropped() > 0) {
      std::cerr << "medinfer: kAuditFailed: " << chain->dropped() << " audit record(s) dropped (buffered queue full)\n";
      status = 1;
    }
  }
  return status;
}

medinfer::audit::Keyring audit_keys(const std::optional<std::string>& key_file) {
  return key_file ? medinfer::audit::Keyring::load_file(*key_file) : medinfer::audit::Keyring::from_environment();
}

int run_audit(const std::vector<std::string>& args) {
  if (args.empty()) usage_error("audit: expected 'verify' or 'export'");
  const std::string sub = args[0];
  std::optional<std::string> key_file, format, file;
  bool allow_unclosed = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&] { return option_value(args, i); };
    if (a == "--key" && sub == "verify") {
      key_file = value();
    } else if (a == "--allow-unclosed" && sub == "verify") {
      allow_unclosed = true;
    } else if (a == "--format" && sub == "export") {
      format = value();
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("audit " + sub + ": unknown option '" + a + "'");
    } else if (file) {
      usage_error("audit " + sub + ": one FILE only");
    } else {
      file = a;
    }
  }
  if (!file) usage_error("audit " + sub + ": FILE is required");
  if (sub == "verify") {
    const auto result = medinfer::audit::verify_log(*file, audit_keys(key_file), allow_unclosed);
    if (result.ok) {
      std::cout << "OK: " << result.records << " records verified" << (result.closed ? " (closed)" : " (not closed)")
                << '\n';
      return 0;
    }
    std::cout << "FAILED at record " << result.first_bad_index << ": " << result.problem << " (" << result.records
              << " records verified before it)\n";
    return 1;
  }
  if (sub != "export") usage_error("audit: unknown subcommand '" + sub + "' (verify, export)");
  if (!format || (*format != "atna" && *format != "fhir")) usage_error("audit export: --format atna|fhir is required");
  std::ifstream in(*file);
  if (!in) throw medinfer::Error(medinfer::ErrorCode::kNotFound, *file + ": cannot open");
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    medinfer::audit::Record r;
    try {
      r = medinfer::audit::from_json_line(line);
    } catch (const medinfer::Error& e) {
      throw medinfer::Error(e.code(), *file + " line " + std::to_string(n) + ": " + e.what());
    }
    std::cout << (*format == "atna" ? medinfer::audit::to_atna_xml(r) : medinfer::audit::to_fhir_audit_event(r)) << '\n';
  }
  return 0;
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
    if (command == "audit") return run_audit(rest);
    if (command == "calibrate") return run_calibrate(rest);
    if (command == "preprocess") return run_preprocess(rest);
    if (command == "inspect") return run_inspect(rest);
    if (command == "package") return run_package(rest);
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
