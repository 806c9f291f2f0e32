// medinfer: the command-line host. Uses only the public API (<medinfer/medinfer.hpp>). Arguments are
// parsed with CLI11: `medinfer --help` and `medinfer COMMAND [SUBCOMMAND] --help` are generated from the
// same option definitions the parser uses.
//
// Exit status, for every command but predict: 0 success; 1 a data error (a bad input, model, key, log...:
// the library's medinfer::Error, printed as "medinfer: kCode: message" or as an error record); 2 a usage
// error (unknown command or option, a missing or malformed argument). predict: 0 all inputs succeeded,
// 1 some failed, 3 all failed, 4 the package was refused, 2 usage, 128 + N after signal N.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"
#include "report_files.hpp"
#include "../common/files.hpp"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

// predict's exit statuses (2 is every command's usage error; 128 + N after signal N).
constexpr int kExitSomeFailed = 1, kExitAllFailed = 3, kExitModelRefused = 4;

struct PredictOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string files_from;
  std::string format = "jsonl";
  bool quiet = false;
  std::string by = "image";
  bool recursive = false;     // --recursive: the default now, kept so that scripts using it still run
  bool no_recursive = false;  // --no-recursive: a folder's own files only
  std::string list_unprocessed;  // --list-unprocessed FILE: the inputs a signal left unread
  std::string sr_dir, fhir_dir;
  medinfer::ManyOptions many;
  std::string audit_log, audit_key, audit_mode = "strict", audit_witness;
  std::vector<std::string> trusted_keys;
  medinfer::PipelineOptions pipeline;
};

// SIGINT / SIGTERM during predict: the signal's number, set by the handler (async-signal-safe) and read
// by the run, which stops taking new inputs, finishes what is in flight, prints it, closes the audit
// chain and exits 128 + signal. A second signal ends the process at once (the default action).
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a read in flight is resumed, not failed with EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// What the run did, for the summary line and the exit status.
struct Tally {
  std::size_t ok = 0, indeterminate = 0;
  std::map<std::string, std::size_t> failed;  // by ErrorCode name
  std::vector<std::string> not_processed;
  std::size_t skipped = 0;  // files left out (not DICOM, ...): reported, never a failure
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  void result(bool indeterminate_result) {
    ++ok;
    if (indeterminate_result) ++indeterminate;
  }
  void error(medinfer::ErrorCode code) { ++failed[medinfer::to_string(code)]; }
  std::size_t failures() const {
    std::size_t n = 0;
    for (const auto& [code, count] : failed) n += count;
    return n;
  }
  // "medinfer: summary: 998 ok (3 indeterminate), 2 failed (kInvalidDicom: 1, kNotFound: 1), 0 not processed, 4.1 s"
  void print(const char* unit) const {
    std::string failures_by_code;
    for (const auto& [code, count] : failed) {
      failures_by_code += (failures_by_code.empty() ? " (" : ", ") + code + ": " + std::to_string(count);
    }
    if (!failures_by_code.empty()) failures_by_code += ")";
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "medinfer: summary: " << ok << " " << unit << " ok (" << indeterminate << " indeterminate), "
              << failures() << " failed" << failures_by_code << ", " << not_processed.size() << " not processed, "
              << (skipped > 0 ? std::to_string(skipped) + " skipped, " : std::string()) << fmt_seconds(elapsed) << '\n';
  }
  // One line for what a signal left undone (never read, never audited), their names in `list_file`
  // when given (--list-unprocessed), else how to get them. Throws Error(kIo) when the list cannot be written.
  void print_unprocessed(const std::string& list_file) const {
    if (not_processed.empty()) return;
    if (list_file.empty()) {
      std::cerr << "medinfer: " << not_processed.size()
                << " not processed (never read, not audited); --list-unprocessed FILE writes their names\n";
      return;
    }
    std::string names;
    for (const auto& input : not_processed) names += input + '\n';
    host::write_whole(list_file, names);
    std::cerr << "medinfer: " << not_processed.size() << " not processed (never read, not audited): listed in "
              << list_file << '\n';
  }
  static std::string fmt_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", s);
    return buf;
  }
};

// Progress on stderr: a bar redrawn in place on a terminal, a plain line every 5 s otherwise (and at
// the start and the end), nothing with --quiet.
class Progress {
 public:
  Progress(bool quiet, std::size_t total, const char* unit)
      : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), total_(total), unit_(unit) {
    if (!quiet_ && !tty_) line(0);
  }
  void update(std::size_t done) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    if (tty_) {
      if (now - last_ < std::chrono::milliseconds(100) && done != total_) return;
      const std::size_t width = 30, filled = total_ ? width * done / total_ : width;
      std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] " << done << "/"
                << total_ << " " << unit_ << rate(done) << std::flush;
    } else if (now - last_ >= std::chrono::seconds(5)) {
      line(done);
    } else {
      return;
    }
    last_ = now;
  }
  void finish(std::size_t done) {
    if (quiet_) return;
    if (tty_) {
      std::cerr << "\r" << std::string(80, ' ') << "\r" << std::flush;
    } else {
      line(done);
    }
  }

 private:
  void line(std::size_t done) {
    std::cerr << "medinfer: progress: " << done << "/" << total_ << " " << unit_ << rate(done) << '\n';
    last_ = std::chrono::steady_clock::now();
  }
  // ", 41.3/s, ETA 2m05s" once something is done (nothing before: no rate to tell).
  std::string rate(std::size_t done) const {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (done == 0 || elapsed <= 0.0) return "";
    const double per_second = static_cast<double>(done) / elapsed;
    const auto left = static_cast<long long>(static_cast<double>(total_ > done ? total_ - done : 0) / per_second + 0.5);
    char buf[64];
    std::snprintf(buf, sizeof buf, ", %.1f/s, ETA %lldm%02llds", per_second, left / 60, left % 60);
    return buf;
  }
  bool quiet_, tty_;
  std::size_t total_;
  const char* unit_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

// The paths of --files-from (one per line; blank lines skipped; "-" reads stdin).
std::vector<std::string> read_file_list(const std::string& from) {
  std::vector<std::string> paths;
  std::ifstream file;
  if (from != "-") {
    file.open(from);
    if (!file) throw medinfer::Error(medinfer::ErrorCode::kNotFound, from + ": cannot open the file list (--files-from)");
  }
  std::istream& in = from == "-" ? std::cin : file;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) paths.push_back(line);
  }
  return paths;
}

// --format csv (RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled). One row
// per finding of a result (image, series, or each series of a study), one per failed input or series,
// one per skipped file or series (error_code "skipped" for a series the selection left out).
const char* const kCsvColumns[] = {"input", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "label",
                                   "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate",
                                   "reason", "rule", "model_name", "model_version", "input_sha256", "sr", "fhir",
                                   "error_code", "error_message"};
constexpr std::size_t kCsvCode = std::size(kCsvColumns) - 2, kCsvMessage = kCsvCode + 1;

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void print_csv_row(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
  std::cout << line << '\n' << std::flush;
}

void print_csv_header() { print_csv_row(std::vector<std::string>(std::begin(kCsvColumns), std::end(kCsvColumns))); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string text_of(const Json& line, const char* key) { return line.contains(key) ? line[key].get<std::string>() : ""; }

// One row per finding of a result (the label order of the package); `line` is its JSON line (for the
// report paths and a report error).
void print_csv_result(const std::string& input, const medinfer::Result& r, const Json& line) {
  for (const medinfer::Finding& f : r.findings) {
    std::vector<std::string> row{input, r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid, f.label,
                                 number(f.probability), number(f.raw_score), number(f.confidence), f.tier,
                                 f.escalate ? "true" : "false", f.indeterminate ? "true" : "false", f.reason,
                                 medinfer::to_string(f.rule), r.model.name, r.model.version, r.input_sha256,
                                 text_of(line, "sr"), text_of(line, "fhir"), "", ""};
    if (line.contains("report_error")) {
      row[kCsvCode] = line["report_error"]["code"].get<std::string>();
      row[kCsvMessage] = line["report_error"]["message"].get<std::string>();
    }
    print_csv_row(row);
  }
}

void print_csv_error(const std::string& input, const std::string& code, const std::string& message,
                     const std::string& study_uid = {}, const std::string& series_uid = {}) {
  std::vector<std::string> row(std::size(kCsvColumns));
  row[0] = input;
  row[1] = study_uid;
  row[2] = series_uid;
  row[kCsvCode] = code;
  row[kCsvMessage] = message;
  print_csv_row(row);
}
void print_csv_error(const std::string& input, const medinfer::Error& e) {
  print_csv_error(input, medinfer::to_string(e.code()), e.what());
}

int run_predict(PredictOptions& o) {
  if (o.audit_log.empty() && (!o.audit_key.empty() || o.audit_mode != "strict" || !o.audit_witness.empty())) {
    usage_error("predict: --audit-key/--audit-mode/--audit-witness need --audit-log");
  }
  if (!o.audit_witness.empty() && o.audit_key.empty() && std::getenv("MEDINFER_AUDIT_KEY") == nullptr) {
    usage_error("predict: --audit-witness needs an audit key (--audit-key or $MEDINFER_AUDIT_KEY)");
  }
  if (o.audit_mode == "buffered" && o.audit_key.empty() && std::getenv("MEDINFER_AUDIT_KEY") == nullptr) {
    usage_error("predict: --audit-mode buffered needs an audit key (--audit-key or $MEDINFER_AUDIT_KEY)");
  }
  if (o.inputs.empty() && o.files_from.empty()) usage_error("predict: no inputs (give files, directories or --files-from)");
  if (!o.files_from.empty()) {
    std::vector<std::string> listed = read_file_list(o.files_from);
    o.inputs.insert(o.inputs.end(), listed.begin(), listed.end());
  }
  // Nothing is lost when the run cannot start: every input still gets a line carrying the reason.
  auto fail_every_input = [&o](const medinfer::Error& e) {
    report_error(e);
    if (o.format == "csv") print_csv_header();
    for (const auto& input : o.inputs) o.format == "csv" ? print_csv_error(input, e) : print_line(error_json(input, e));
  };
  const bool csv = o.format == "csv";
  medinfer::PipelineOptions& options = o.pipeline;
  options.actor.application_id = "medinfer-cli";
  std::optional<medinfer::Pipeline> pipeline;
  medinfer::audit::OpenedLog log;
  std::optional<ReportFiles> reports;
  try {
    options.package.trusted_public_keys = read_trusted_keys(o.trusted_keys);
    reports.emplace(o.sr_dir, o.fhir_dir, medinfer::report::ReportOptions{});  // before the audit log opens
    if (!o.audit_log.empty()) {
      medinfer::audit::LogRequest request;
      request.path = o.audit_log;
      request.key_file = o.audit_key;
      request.witness_path = o.audit_witness;
      request.durability =
          o.audit_mode == "buffered" ? medinfer::audit::Durability::kBuffered : medinfer::audit::Durability::kStrict;
      log = medinfer::audit::open_log(request);
      options.audit_sink = log.sink;
      options.pseudonym_key = log.pseudonym_key;
    }
  } catch (const medinfer::Error& e) {
    fail_every_input(e);
    return kExitAllFailed;
  }
  try {
    pipeline.emplace(medinfer::Pipeline::open(o.model, options));
  } catch (const medinfer::Error& e) {
    fail_every_input(e);
    // 4 when the package itself is refused; a pipeline option the library refused (an actor id too
    // long, ...) fails every input instead. Only on this error path is the package verified again.
    try {
      (void)medinfer::verify_package(o.model, options.package);
    } catch (const medinfer::Error&) {
      return kExitModelRefused;
    }
    return kExitAllFailed;
  }
  reports->use_package(*pipeline->package());
  install_stop_handlers();
  Tally tally;
  const char* unit = o.by == "image" ? "images" : o.by == "series" ? "series" : "studies";
  // The library's one rule for what the inputs are (folders searched recursively unless
  // --no-recursive, links followed, non-DICOM files skipped and listed); nothing found is an error
  // naming what was searched.
  medinfer::Inputs given(o.inputs);
  given.find.recursive = !o.no_recursive;
  medinfer::ResolvedInputs resolved;
  try {
    resolved = given.resolve();
  } catch (const medinfer::Error& e) {
    fail_every_input(e);
    return kExitAllFailed;
  }
  if (csv) print_csv_header();
  auto print_skipped = [&](const medinfer::dicom::SkippedFile& skipped) {
    ++tally.skipped;
    if (csv) {
      print_csv_error(skipped.path, "skipped", medinfer::to_string(skipped.code) + std::string(": ") + skipped.reason);
    } else {
      print_line(Json{{"input", skipped.path},
                      {"skipped", {{"code", medinfer::to_string(skipped.code)}, {"reason", skipped.reason}}}});
    }
  };
  for (const auto& skipped : resolved.skipped) print_skipped(skipped);
  // A result's reports (--sr, --fhir): written before its line is printed, which names them. A report
  // that fails is the input's failure (its line carries the result and "report_error").
  auto with_reports = [&](Json& line, const auto& result, const std::vector<std::string>& sources) {
    if (!reports->enabled()) return true;
    try {
      reports->write(result, sources, line);
      return true;
    } catch (const medinfer::Error& e) {
      line["report_error"] = {{"code", medinfer::to_string(e.code())}, {"message", e.what()}};
      tally.error(e.code());
      return false;
    }
  };
  if (o.by == "image") {
    // Every file gets a line, in this order.
    const std::vector<medinfer::Input>& inputs = resolved.inputs;
    Progress progress(o.quiet, inputs.size(), unit);
    medinfer::ManyOptions many = o.many;
    std::size_t processed = 0;  // outcomes of inputs that were read (the progress line's count)
    many.on_outcome = [&](medinfer::Outcome&& outcome) {
      const std::string& input = inputs[outcome.index].path;
      if (!outcome.ok()) {
        if (outcome.error->code() == medinfer::ErrorCode::kCancelled) {
          tally.not_processed.push_back(input);  // never read, never audited: counted in the summary
          return;
        }
        ++processed;
        tally.error(outcome.error->code());
        csv ? print_csv_error(input, *outcome.error) : print_line(error_json(input, *outcome.error));
        return;
      }
      ++processed;
      Json line{{"input", input}};
      line.update(Json::parse(medinfer::to_json(*outcome.result)));
      if (with_reports(line, *outcome.result, {input})) tally.result(outcome.result->indeterminate);
      csv ? print_csv_result(input, *outcome.result, line) : print_line(line);
    };
    many.progress = [&](std::size_t, std::size_t) {
      if (g_signal != 0) many.cancel.cancel();
      progress.update(processed);
    };
    pipeline->predict_many(inputs, many);
    progress.finish(processed);
  } else {
    // Series and studies: the files are scanned and grouped by their headers. A signal stops between
    // series (or studies): a series is never cut short and passed off as whole.
    std::vector<std::string> files;
    for (const auto& input : resolved.inputs) files.push_back(input.path);
    const medinfer::dicom::DirectoryIndex index = medinfer::dicom::scan_files(files, o.pipeline.read, o.many.workers);
    for (const auto& skipped : index.skipped) print_skipped(skipped);
    std::size_t units = 0;
    for (const auto& study : index.studies) units += o.by == "study" ? 1 : study.series.size();
    Progress progress(o.quiet, units, unit);
    std::size_t done = 0;
    // One series or study: after a signal only listed as not processed; else predicted (`predict`
    // prints its line(s) and tallies it) or its error printed.
    auto one = [&](const char* what, const char* uid_field, const std::string& study_uid, const std::string& uid,
                   const std::vector<std::string>& inputs, const std::function<void()>& predict) {
      if (g_signal != 0) {
        tally.not_processed.push_back(std::string(what) + " " + uid + " (" + inputs.front() + ", ...)");
        return;
      }
      try {
        predict();
      } catch (const medinfer::Error& e) {
        if (csv) {
          print_csv_error(inputs.front(), medinfer::to_string(e.code()), e.what(), study_uid,
                          std::string(what) == "series" ? uid : "");
        } else {
          Json line = error_json(inputs.front(), e);
          line[uid_field] = uid;
          print_line(line);
        }
        tally.error(e.code());
      }
      progress.update(++done);
    };
    for (const auto& study : index.studies) {
      if (o.by == "study") {
        std::vector<std::string> inputs;
        for (const auto& series : study.series) {
          for (const auto& instance : series.instances) inputs.push_back(instance.path);
        }
        one("study", "study_instance_uid", study.study_instance_uid, study.study_instance_uid, inputs, [&] {
          const medinfer::StudyResult result = pipeline->predict_study(inputs, o.many);
          Json line = Json::parse(medinfer::to_json(result));
          const bool ok = result.series.empty() || with_reports(line, result, inputs);
          if (!ok) {
            // counted as the report's failure
          } else if (!result.failed.empty()) {
            tally.error(result.failed.front().second.code());
          } else {
            tally.result(std::any_of(result.series.begin(), result.series.end(),
                                     [](const medinfer::SeriesResult& s) { return s.indeterminate; }));
          }
          if (!csv) return print_line(line);
          for (const auto& s : result.series) print_csv_result(inputs.front(), s, line);
          for (const auto& [s, e] : result.failed) {
            print_csv_error(inputs.front(), medinfer::to_string(e.code()), e.what(), result.study_instance_uid,
                            s.series_instance_uid);
          }
          for (const auto& s : result.skipped) {
            print_csv_error(inputs.front(), "skipped", s.reason, result.study_instance_uid, s.series_instance_uid);
          }
        });
        continue;
      }
      for (const auto& series : study.series) {
        std::vector<std::string> inputs;
        for (const auto& instance : series.instances) inputs.push_back(instance.path);
        one("series", "series_instance_uid", study.study_instance_uid, series.series_instance_uid, inputs, [&] {
          const medinfer::SeriesResult result = pipeline->predict_series(inputs, o.many);
          Json line{{"input", inputs.front()}};
          line.update(Json::parse(medinfer::to_json(result)));
          if (with_reports(line, result, inputs)) tally.result(result.indeterminate);
          csv ? print_csv_result(inputs.front(), result, line) : print_line(line);
        });
      }
    }
    progress.finish(done);
  }
  bool audit_failed = false;
  if (log.chain) {
    try {
      log.chain->close();  // the closing checkpoint, interrupted or not
    } catch (const medinfer::Error& e) {
      report_error(e);
      audit_failed = true;
    }
    if (log.chain->dropped() > 0) {
      std::cerr << "medinfer: kAuditFailed: " << log.chain->dropped() << " audit record(s) dropped (buffered queue full)\n";
      audit_failed = true;
    }
  }
  std::cout << std::flush;
  tally.print(unit);
  try {
    tally.print_unprocessed(o.list_unprocessed);
  } catch (const medinfer::Error& e) {
    report_error(e);
    audit_failed = true;  // (the run's status: some failed)
  }
  if (g_signal != 0) return 128 + g_signal;
  if (tally.ok == 0) return kExitAllFailed;  // every input failed (or there was none)
  return tally.failures() > 0 || audit_failed ? kExitSomeFailed : 0;
}

int run_verify(const std::string& file, const std::string& key_file, bool allow_unclosed, const std::string& witness) {
  const auto keys = key_file.empty() ? medinfer::audit::Keyring::from_environment()
                                     : medinfer::audit::Keyring::load_file(key_file);
  const auto result = witness.empty() ? medinfer::audit::verify_log(file, keys, allow_unclosed)
                                      : medinfer::audit::verify_log_with_witness(file, keys, witness, allow_unclosed);
  if (result.ok) {
    std::cout << "OK: " << result.records << " records verified" << (result.closed ? " (closed)" : " (not closed)")
              << '\n';
    return 0;
  }
  std::cout << "FAILED at record " << result.first_bad_index << ": " << result.problem << " (" << result.records
            << " records verified before it)\n";
  return 1;
}

int run_export(const std::string& file, const std::string& format) {
  std::ifstream in(file);
  if (!in) throw medinfer::Error(medinfer::ErrorCode::kNotFound, file + ": cannot open");
  // Every line is converted before anything is printed: a bad line leaves no partial export behind.
  std::string out, line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    medinfer::audit::Record r;
    try {
      r = medinfer::audit::from_json_line(line);
    } catch (const medinfer::Error& e) {
      throw medinfer::Error(e.code(), file + " line " + std::to_string(n) + ": " + e.what());
    }
    out += (format == "atna" ? medinfer::audit::to_atna_xml(r) : medinfer::audit::to_fhir_audit_event(r)) + '\n';
  }
  std::cout << out;
  return 0;
}

int run_version(bool json) {
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

// Levenshtein distance, for "did you mean".
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

// The subcommand of `app` called `name`, or null (CLI11 2.1's get_subcommand throws instead).
const CLI::App* subcommand_named(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : subcommands_of(app)) {
    if (sub->get_name() == name) return sub;
  }
  return nullptr;
}

// "; did you mean 'NAME'?" naming the nearest of `app`'s options (`option`) or commands, when one is near.
std::string suggestion(const CLI::App& app, const std::string& given, bool option) {
  std::vector<std::string> names;
  if (option) {
    for (const CLI::Option* opt : app.get_options()) {
      for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    }
  } else {
    for (const CLI::App* sub : subcommands_of(app)) names.push_back(sub->get_name());
  }
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(3, given.size() / 3) + 1;
  for (const auto& n : names) {
    const std::size_t d = edit_distance(given, n);
    if (d < best_distance) best = n, best_distance = d;
  }
  return best.empty() ? std::string() : "; did you mean '" + best + "'?";
}

// Before CLI11 parses (it would report a missing required option first, e.g. "--model is required" for
// "--modle"): the first "--NAME" that no command on the path takes, as "unknown option --NAME for
// 'COMMAND'; did you mean '--model'?", or "" when every option is known.
std::string unknown_option(const CLI::App& app, int argc, char** argv) {
  std::vector<const CLI::App*> path{&app};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.rfind("--", 0) != 0) {
      if (const CLI::App* sub = subcommand_named(*path.back(), arg)) path.push_back(sub);
      continue;
    }
    const std::string name = arg.substr(0, arg.find('='));
    const bool known = std::any_of(path.begin(), path.end(),
                                   [&](const CLI::App* a) { return a->get_option_no_throw(name) != nullptr; });
    if (!known) {
      const std::string where = path.size() == 1 ? std::string("medinfer") : path.back()->get_name();
      return "unknown option " + name + " for '" + where + "'" + suggestion(*path.back(), name, true);
    }
  }
  return "";
}

}  // namespace

void add_predict_command(CLI::App& app, Runner& run) {
  auto o = std::make_shared<PredictOptions>();
  const char* user = std::getenv("USER");
  o->pipeline.actor.user_id = user ? user : "";
  CLI::App* cmd = app.add_subcommand(
      "predict", "predict --model DIR [options] FILE...: runs the model package in DIR on each DICOM FILE and prints "
                 "one JSON line per input");
  cmd->add_option("--model", o->model, "the model package directory")->required();
  cmd->add_option("inputs", o->inputs,
                  "DICOM files and folders (a folder's whole tree, symbolic links followed; files that are not DICOM "
                  "are skipped and listed); with --by image, scored in this order (a folder's files sorted by path)");
  cmd->add_flag("--recursive", o->recursive, "search each folder's whole tree (the default; kept for scripts)");
  cmd->add_flag("--no-recursive", o->no_recursive, "only the files directly in each folder given");
  cmd->add_option("--files-from", o->files_from,
                  "also read input paths from FILE, one per line (blank lines skipped); '-' reads standard input");
  cmd->add_option("--list-unprocessed", o->list_unprocessed,
                  "after a signal, write the inputs (or series, studies) that were never read to FILE, one per line "
                  "(the summary counts them either way)")
      ->type_name("FILE");
  cmd->add_flag("--quiet", o->quiet, "no progress on stderr (the summary line is still printed)");
  cmd->add_option("--format", o->format,
                  "jsonl: one JSON object per line; csv: a header, then one row per finding (input, UIDs, label, "
                  "probability, tier, ..., sr, fhir) of each image, series or study's series, and one per failed "
                  "input or series (error_code, error_message; \"skipped\" for a file or series left out)")
      ->check(CLI::IsMember({"jsonl", "csv"}))
      ->capture_default_str();
  cmd->add_option("--by", o->by,
                  "image: one line per file; series: the files are grouped by series and each series is one line "
                  "(a 2D model aggregated over its slices, a 3D model on its volume); study: one line per study (its "
                  "series selected by the package's series_selection)")
      ->check(CLI::IsMember({"image", "series", "study"}))
      ->capture_default_str();
  cmd->add_option("--sr", o->sr_dir,
                  "write a DICOM Structured Report (Comprehensive SR, TID 1500) of each result into DIR, named "
                  "UID.sr.dcm after the image's SOP, the series' or the study's Instance UID; the line names it (\"sr\")")
      ->type_name("DIR");
  cmd->add_option("--fhir", o->fhir_dir,
                  "write a FHIR R4 Bundle (Observations, DiagnosticReport, Device) of each result into DIR as "
                  "UID.fhir.json; the line names it (\"fhir\")")
      ->type_name("DIR");
  cmd->add_option("--jobs", o->many.workers,
                  "worker threads that read, preprocess and run batches (0: one per core); each model run is "
                  "single-threaded, so a busy machine slows it gracefully")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--batch-size", o->many.batch_size, "images per model run")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--audit-log", o->audit_log, "append one JSON Lines audit record per prediction to FILE");
  cmd->add_option("--audit-key", o->audit_key,
                  "make the audit log a tamper-evident HMAC-SHA256 chain under the keys in KEYFILE (lines \"EPOCH HEX\" "
                  "or \"HEX\"); default: $MEDINFER_AUDIT_KEY when set, else a plain JSON Lines log. With a key, studies "
                  "are referenced by keyed pseudonyms");
  cmd->add_option("--audit-mode", o->audit_mode,
                  "strict: each record fsync'd before the result is printed; buffered: a writer thread (needs a key; "
                  "dropped records are reported on stderr)")
      ->check(CLI::IsMember({"strict", "buffered"}))
      ->capture_default_str();
  cmd->add_option("--audit-witness", o->audit_witness,
                  "append every checkpoint's head (log id, chain index, MAC, time) to this witness file; keep it "
                  "elsewhere: 'audit verify --witness' then proves nothing was cut from the log or swapped");
  cmd->add_option("--audit-user", o->pipeline.actor.user_id, "the user id recorded as the actor (default: $USER)");
  cmd->add_option("--threads", o->pipeline.engine.intra_op_threads,
                  "LibTorch intra-op threads per model run (0: LibTorch's own setting). Above 1, the CLI runs with "
                  "OMP_WAIT_POLICY=PASSIVE (unless set) so a busy machine does not stall its OpenMP threads; --jobs "
                  "is the better way to use more cores")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--trusted-key", o->trusted_keys,
                  "an Ed25519 public key (PEM) trusted to sign packages (repeatable): a signed package must verify "
                  "against one of them")
      ->allow_extra_args(false);
  cmd->add_flag("--require-signature", o->pipeline.package.require_signature,
                "refuse an unsigned package (or one signed by an untrusted key)");
  cmd->add_flag("--allow-unsigned", o->pipeline.package.allow_unsigned,
                "with --trusted-key, still open an unsigned package (a pinned key otherwise requires a signature)");
  cmd->footer(
      "--by image: each line: {input, probability, raw_score, confidence, tier, escalate, indeterminate, reason (when "
      "indeterminate), rule, operating_point: {name, positive} (when the policy has one), prediction_set (with a "
      "conformal rule), label, findings: [{label, probability, raw_score, confidence, tier, escalate, indeterminate, "
      "rule, reason (when indeterminate)}, one per label], model: {name, version, sha256}, arm (during an A/B test), "
      "input_sha256, study_instance_uid, series_instance_uid, sop_instance_uid, latency_ms}; the top-level score is the primary finding's (docs/schemas/result.schema.json). "
      "An input that failed: {input, error: {code, message}}. --by series: each line adds series_instance_uid, "
      "study_instance_uid, modality, aggregation, slices, failed_slices, evidence: [{label, slice_index, "
      "sop_instance_uid, probability}], warnings: [{kind, message}]. --by study: {study_instance_uid, series: [...], "
      "skipped: [{series_instance_uid, modality, series_description, reason}], failed: [...], skipped_files, "
      "latency_ms}. Files the scan could not index: {input, skipped: {code, reason}}. With --sr/--fhir a line adds "
      "\"sr\" and \"fhir\" (the files written), or \"report_error\": {code, message} when a report could not be "
      "written (that input then counts as failed; nothing partial is left in DIR).\n"
      "Progress goes to stderr (a bar on a terminal, a line every 5 s otherwise; none with --quiet), then one "
      "summary line: 'medinfer: summary: N images ok (K indeterminate), M failed (CODE: n, ...), P not processed, "
      "T s'. SIGINT/SIGTERM: no new input is started, those in flight finish and are printed, the audit chain "
      "is closed, the inputs never started are listed ('medinfer: not processed: PATH'), exit 128 + signal.\n"
      "Exit status: 0 every input succeeded; 1 some inputs failed (each has its error line) or the audit log "
      "failed; 3 every input failed (or none was found); 4 the model package was refused; 2 usage error; "
      "130 SIGINT, 143 SIGTERM.");
  cmd->callback([o, &run] { run = [o] { return run_predict(*o); }; });
}

void add_audit_command(CLI::App& app, Runner& run) {
  CLI::App* audit = app.add_subcommand("audit", "audit verify|export: checks and converts audit logs");
  audit->require_subcommand(1);
  struct Options {
    std::string file, key, format, witness;
    bool allow_unclosed = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* verify = audit->add_subcommand(
      "verify", "audit verify FILE [--key KEYFILE] [--allow-unclosed]: verifies a chained audit log: \"OK: N records "
                "verified\" (exit 0), or names the first record that was modified, deleted, inserted or reordered, or a "
                "torn last line (exit 1)");
  verify->add_option("file", o->file, "the chained audit log")->required();
  verify->add_option("--key", o->key, "the key file (default: $MEDINFER_AUDIT_KEY)");
  verify->add_flag("--allow-unclosed", o->allow_unclosed, "accept a log without its closing checkpoint");
  verify->add_option("--witness", o->witness,
                     "the witness file 'predict --audit-witness' wrote: also prove that the log holds every witnessed "
                     "head (a cut tail, deleted runs or a swapped log fail, naming what is missing)");
  verify->callback([o, &run] { run = [o] { return run_verify(o->file, o->key, o->allow_unclosed, o->witness); }; });
  CLI::App* exporter = audit->add_subcommand(
      "export", "audit export --format atna|fhir FILE: prints each record as a DICOM PS3.15 A.5 audit message (IHE "
                "ATNA, one XML document per line) or a FHIR R4 AuditEvent (one JSON resource per line)");
  exporter->add_option("file", o->file, "the audit log (plain or chained)")->required();
  exporter->add_option("--format", o->format, "atna or fhir")->required()->check(CLI::IsMember({"atna", "fhir"}));
  exporter->callback([o, &run] { run = [o] { return run_export(o->file, o->format); }; });
}

void add_version_command(CLI::App& app, Runner& run) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "version", "version [--json]: the medinfer version and the LibTorch, OpenCV and DCMTK versions it was built with");
  cmd->add_flag("--json", *json, "one JSON object: {version, libtorch, opencv, dcmtk, compiler, cuda_compiled, cuda_available}");
  cmd->callback([json, &run] { run = [json] { return run_version(*json); }; });
}

// LibTorch's intra-op threads are OpenMP (libgomp) threads, which spin-wait between parallel regions
// unless OMP_WAIT_POLICY=PASSIVE was in the environment when the process started (libgomp reads it
// once, at load). On a machine whose other core is busy, spinning made `--threads 2` 1.75-5x slower
// than `--threads 1` (docs/benchmarks.md). So when more than one intra-op thread is asked for and the
// policy is not set, the CLI starts itself again with it set: one exec, before any work.
void passive_openmp_for_intra_op(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* value = a == "--threads" && i + 1 < argc ? argv[i + 1] : a.rfind("--threads=", 0) == 0 ? argv[i] + 10 : nullptr;
    if (value == nullptr) continue;
    char* end = nullptr;
    const long n = std::strtol(value, &end, 10);
    if (end != value && *end == '\0' && n != 1) {  // 0 (LibTorch's own count: all cores) or > 1
      setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
      execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
      return;
    }
  }
}

int main(int argc, char** argv) {
  passive_openmp_for_intra_op(argc, argv);
  // Large blocks stay in the heap instead of being mapped and unmapped per image: the model's
  // activations (LibTorch) and per-image tensors otherwise page-fault on every prediction (measured:
  // +12 % images/s one by one, +3 % for predict_many, whose batch buffers are reused; docs/cli.md).
  // A host's choice, made here.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"medinfer: DICOM images to calibrated, audited risk scores.", "medinfer"};
  app.footer("Exit status: 0 success, 1 a data error (bad input, model, key or log), 2 a usage error; predict: "
             "0 all inputs succeeded, 1 some failed, 3 all failed, 4 the model package was refused, 130/143 "
             "SIGINT/SIGTERM.\n"
             "'medinfer COMMAND --help' describes each command's options and output.");
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "the same as 'medinfer version'");
  // The library never prints: its warnings (an unsigned or unverified package, ...) go to stderr here.
  medinfer::set_log_handler(
      [](medinfer::LogLevel level, std::string_view message) {
        std::cerr << "medinfer: " << medinfer::to_string(level) << ": " << message << '\n';
      },
      medinfer::LogLevel::kWarning);
  Runner run;
  add_predict_command(app, run);
  add_audit_command(app, run);
  add_package_command(app, run);
  add_inspect_command(app, run);
  add_preprocess_command(app, run);
  add_calibrate_command(app, run);
  add_version_command(app, run);
  CLI::App* help = app.add_subcommand("help", "help [COMMAND [SUBCOMMAND]]: this text, or a command's (as COMMAND --help)");
  std::vector<std::string> help_topic;
  help->add_option("command", help_topic, "the command (and subcommand) to describe");
  help->callback([&] {
    run = [&]() -> int {
      const CLI::App* topic = &app;
      for (const auto& name : help_topic) {
        const CLI::App* next = subcommand_named(*topic, name);
        if (next == nullptr) throw UsageError("help: no command '" + name + "'" + suggestion(*topic, name, false));
        topic = next;
      }
      std::cout << topic->get_formatter()->make_help(topic, topic == &app ? "medinfer" : topic->get_name(),
                                                     CLI::AppFormatMode::Normal);
      return 0;
    };
  });
  if (const std::string unknown = unknown_option(app, argc, argv); !unknown.empty()) {
    std::cerr << "medinfer: " << unknown << " (see 'medinfer --help')\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (!run && show_version) run = [] { return run_version(false); };
  if (!run) {
    std::cerr << app.help() << "medinfer: a command is required\n";
    return 2;
  }
  try {
    return run();
  } catch (const UsageError& e) {
    std::cerr << "medinfer: " << e.what() << " (see 'medinfer --help')\n";
    return 2;
  } catch (const medinfer::Error& e) {
    report_error(e);
    return 1;
  } catch (const std::exception& e) {  // the library lets nothing else out; this is the CLI's own failure
    std::cerr << "medinfer: unexpected error: " << e.what() << '\n';
    return 1;
  }
}
