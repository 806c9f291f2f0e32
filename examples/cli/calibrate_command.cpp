// medinfer calibrate fit | apply: fitting calibrators from scores or from a package run over labelled
// DICOM files, with a report (metrics before/after, operating point, conformal threshold) and a plot.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

namespace {

namespace cal = medinfer::calibration;
namespace fs = std::filesystem;
using medinfer::Error;
using medinfer::ErrorCode;

[[noreturn]] void bad_csv(const std::string& file, std::size_t line, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, file + " line " + std::to_string(line) + ": " + what);
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string f; std::getline(ss, f, ',');) out.push_back(trim(f));
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

// Reads a CSV whose header must be one of `headers`; returns the rows' fields (header order).
std::vector<std::vector<std::string>> read_csv(const std::string& file, const std::vector<std::vector<std::string>>& headers,
                                               std::vector<std::string>& header_used) {
  std::ifstream in(file);
  if (!in) throw Error(fs::exists(file) ? ErrorCode::kIo : ErrorCode::kNotFound, file + ": cannot open");
  std::string line;
  if (!std::getline(in, line)) bad_csv(file, 1, "empty file: expected a header");
  header_used = split(line);
  bool known = false;
  for (const auto& h : headers) known = known || h == header_used;
  if (!known) {
    std::string expected;
    for (const auto& h : headers) {
      std::string joined;
      for (const auto& f : h) joined += (joined.empty() ? "" : ",") + f;
      expected += (expected.empty() ? "'" : " or '") + joined + "'";
    }
    bad_csv(file, 1, "header '" + trim(line) + "' is not " + expected);
  }
  std::vector<std::vector<std::string>> rows;
  for (std::size_t n = 2; std::getline(in, line); ++n) {
    if (trim(line).empty()) continue;
    auto fields = split(line);
    if (fields.size() != header_used.size()) {
      bad_csv(file, n, std::to_string(fields.size()) + " fields, expected " + std::to_string(header_used.size()));
    }
    fields.push_back(std::to_string(n));  // remember the line number for later errors
    rows.push_back(std::move(fields));
  }
  if (rows.empty()) bad_csv(file, 2, "no data rows");
  return rows;
}

double parse_score(const std::string& file, const std::vector<std::string>& row, std::size_t col) {
  const std::size_t line = std::stoul(row.back());
  try {
    std::size_t used = 0;
    const double v = std::stod(row[col], &used);
    if (used == row[col].size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  bad_csv(file, line, "score '" + row[col] + "' is not a finite number");
}

int parse_label(const std::string& file, const std::vector<std::string>& row, std::size_t col) {
  if (row[col] == "0") return 0;
  if (row[col] == "1") return 1;
  bad_csv(file, std::stoul(row.back()), "label '" + row[col] + "' is not 0 or 1");
}

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json metrics_json(const cal::Metrics& m) {
  return Json{{"count", m.count},
              {"positives", m.positives},
              {"ece_positive", m.ece_positive},
              {"ece_top_label", m.ece_top_label},
              {"ece_equal_mass", m.ece_equal_mass},
              {"mce", m.mce},
              {"brier", m.brier},
              {"nll", m.nll},
              {"auc", number_or_null(m.auc)},
              {"threshold", m.threshold},
              {"sensitivity", number_or_null(m.sensitivity)},
              {"specificity", number_or_null(m.specificity)},
              {"ppv", number_or_null(m.ppv)},
              {"npv", number_or_null(m.npv)}};
}

Json intervals_json(const std::map<std::string, cal::Interval>& ci) {
  Json j = Json::object();
  for (const auto& [k, v] : ci) j[k] = {v.low, v.high};
  return j;
}

struct FitOptions {
  std::string method;
  std::optional<std::string> out, report, plot, scores, model, labels;
  int bins = 15;
  double threshold = 0.5, target_sensitivity = 0.9, delta = 0.05, alpha = 0.1;
  int bootstrap = 0;
};

// Metrics of sigmoid(score) ("before") and of the calibrated probabilities ("after") on labelled
// scores, with bootstrap intervals on request, and the reliability plot when asked for.
Json evaluate(const FitOptions& o, const cal::Calibrator& c, const std::vector<double>& scores,
              const std::vector<int>& labels, std::vector<double>& after, const std::string& what) {
  std::vector<double> raw;
  after.clear();
  for (double s : scores) raw.push_back(1.0 / (1.0 + std::exp(-s))), after.push_back(c.apply(s));
  const cal::Metrics m_before = cal::compute_metrics(raw, labels, o.threshold, 15);
  const cal::Metrics m_after = cal::compute_metrics(after, labels, o.threshold, 15);
  Json report;
  report["method"] = cal::to_string(c.method());
  report["calibration"] = Json::parse(c.to_json());
  report["data"] = {{"count", scores.size()}, {"positives", m_before.positives}, {"role", what}};
  report["metrics_before"] = metrics_json(m_before);
  report["metrics_after"] = metrics_json(m_after);
  if (o.bootstrap > 0) {
    report["intervals_95_before"] = intervals_json(cal::bootstrap_intervals(raw, labels, o.threshold, o.bootstrap, 1));
    report["intervals_95_after"] = intervals_json(cal::bootstrap_intervals(after, labels, o.threshold, o.bootstrap, 1));
  }
  if (o.plot) {
    cal::write_reliability_png(*o.plot, m_before, m_after,
                               std::string("Reliability: ") + cal::to_string(c.method()) + " calibration, " +
                                   std::to_string(scores.size()) + " " + what + " cases");
  }
  return report;
}

// A fit set too small to trust: below 100 cases, or fewer than 20 of a class. Records the counts and the
// warning in report["data"] and prints the warning on stderr; the fit still goes ahead (the operator
// decides), but never silently.
constexpr std::size_t kMinFitCases = 100, kMinFitPerClass = 20;
void check_fit_size(Json& data, const std::vector<std::size_t>& per_class, const std::string& label) {
  std::size_t total = 0, smallest = SIZE_MAX;
  for (std::size_t c : per_class) total += c, smallest = std::min(smallest, c);
  data["per_class"] = per_class;
  data["minimum_recommended"] = {{"cases", kMinFitCases}, {"per_class", kMinFitPerClass}};
  if (total >= kMinFitCases && smallest >= kMinFitPerClass) {
    data["small"] = false;
    return;
  }
  std::string counts;
  for (std::size_t k = 0; k < per_class.size(); ++k) counts += (k ? ", " : "") + std::to_string(per_class[k]);
  const std::string warning = "calibrate fit" + (label.empty() ? std::string() : " (" + label + ")") + ": only " +
                              std::to_string(total) + " cases (per class: " + counts + "), below the " +
                              std::to_string(kMinFitCases) + " cases and " + std::to_string(kMinFitPerClass) +
                              " of each class recommended: the calibration and its metrics are unreliable";
  data["small"] = true;
  data["warning"] = warning;
  std::cerr << "medinfer: warning: " << warning << '\n';
}

// Fits and returns the report (and writes the plot).
Json fit_and_report(const FitOptions& o, const std::vector<double>& scores, const std::vector<int>& labels,
                    cal::Calibrator& fitted, const std::string& label = {}) {
  std::optional<cal::MethodSelection> selection;
  if (o.method == "auto") selection = cal::select_method(scores, labels, o.bins);
  fitted = cal::Calibrator::fit(selection ? selection->method : cal::parse_method(o.method), scores, labels, o.bins);
  std::vector<double> after;
  Json report = evaluate(o, fitted, scores, labels, after, "fitting");
  const auto positives = static_cast<std::size_t>(std::count(labels.begin(), labels.end(), 1));
  check_fit_size(report["data"], {labels.size() - positives, positives}, label);
  if (selection) {
    report["method_selection"] = {{"rule", "lowest mean 5-fold cross-validated ECE"}, {"ece", selection->mean_ece}};
  }
  report["note"] =
      "metrics_before treats sigmoid(score) as the probability; both are measured on the fitting data (for an "
      "unbiased estimate, evaluate on another split with 'calibrate apply --report')";
  const cal::OperatingPoint op = cal::sensitivity_operating_point(after, labels, o.target_sensitivity, o.delta);
  const cal::ConformalThreshold conformal = cal::conformal_threshold(after, labels, o.alpha);
  report["operating_point"] = {
      {"target_sensitivity", op.target_sensitivity},
      {"delta", op.delta},
      {"threshold_empirical", op.threshold_empirical},
      {"metrics_at_empirical", metrics_json(op.at_empirical)},
      {"threshold_guaranteed", op.guaranteed ? Json(op.threshold_guaranteed) : Json(nullptr)},
      {"metrics_at_guaranteed", op.guaranteed ? metrics_json(op.at_guaranteed) : Json(nullptr)},
      {"guarantee", "Learn-then-Test (fixed-sequence binomial tests): with probability >= 1 - delta the sensitivity "
                    "at threshold_guaranteed is >= target_sensitivity on cases exchangeable with these"}};
  report["conformal"] = {{"alpha", conformal.alpha},
                         {"qhat", conformal.qhat},
                         {"empirical_coverage", conformal.empirical_coverage},
                         {"fraction_both", conformal.fraction_both},
                         {"fraction_empty", conformal.fraction_empty},
                         {"guarantee", "split conformal: the prediction set {c : 1 - p(c) <= qhat} contains the true "
                                       "class with probability >= 1 - alpha (marginal, exchangeable cases)"}};
  return report;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error(ErrorCode::kIo, path + ": cannot write");
}

// One labelled file of `calibrate fit --model`: its path, and its label column(s) as text.
struct LabelledFile {
  fs::path path;
  std::vector<std::string> labels;
  std::string line;
};

// The labels CSV for the package's task: "path,label" (binary: 0/1; multi-class: a class name) or, for
// multi-label, "path," followed by every label name in the package's order (each 0/1).
std::vector<LabelledFile> read_labels(const std::string& file, const medinfer::ModelPackage& package) {
  std::vector<std::string> expected{"path"};
  if (package.task() == medinfer::Task::kMultiLabel) {
    expected.insert(expected.end(), package.labels().begin(), package.labels().end());
  } else {
    expected.emplace_back("label");
  }
  std::vector<std::string> header;
  const auto rows = read_csv(file, {expected}, header);
  const fs::path base = fs::path(file).parent_path();
  std::vector<LabelledFile> out;
  for (const auto& row : rows) {
    LabelledFile f;
    f.path = fs::path(row[0]).is_absolute() ? fs::path(row[0]) : base / row[0];
    f.labels.assign(row.begin() + 1, row.end() - 1);
    f.line = row.back();
    out.push_back(std::move(f));
  }
  return out;
}

int fit_from_model(const FitOptions& o) {
  const auto pipeline = medinfer::Pipeline::open(*o.model);
  const auto package = pipeline.package();
  const medinfer::Task task = package->task();
  const std::vector<std::string>& names = package->labels();
  if (task == medinfer::Task::kMultiClass && o.method != "auto" && o.method != "temperature") {
    throw Error(ErrorCode::kInvalidArgument, "calibrate fit --model: " + package->identity().name +
                                                 " is multi-class: it is calibrated by one temperature (--method "
                                                 "temperature or auto), not '" + o.method + "'");
  }
  const auto files = read_labels(*o.labels, *package);
  // raw[k][i]: label k's logit for file i; classes[i]: the true class (multi-class).
  std::vector<std::vector<double>> raw(names.size());
  std::vector<std::vector<double>> logit_rows;
  std::vector<std::vector<int>> targets(names.size());
  std::vector<int> classes;
  for (const LabelledFile& f : files) {
    if (task == medinfer::Task::kMultiClass) {
      const auto it = std::find(names.begin(), names.end(), f.labels[0]);
      if (it == names.end()) bad_csv(*o.labels, std::stoul(f.line), "class '" + f.labels[0] + "' is not one of the package's labels");
      classes.push_back(static_cast<int>(it - names.begin()));
    } else {
      for (std::size_t k = 0; k < names.size(); ++k) {
        const std::vector<std::string> cell{f.labels[k], f.line};
        targets[k].push_back(parse_label(*o.labels, cell, 0));
      }
    }
    medinfer::Result r;
    try {
      r = pipeline.predict(f.path.string());
    } catch (const Error& e) {
      throw Error(e.code(), *o.labels + " line " + f.line + ": " + e.what());
    }
    std::vector<double> row;
    for (std::size_t k = 0; k < names.size(); ++k) raw[k].push_back(r.findings[k].raw_score), row.push_back(r.findings[k].raw_score);
    logit_rows.push_back(std::move(row));
  }

  std::vector<cal::Calibrator> calibrators;
  Json report;
  std::string summary;
  if (task == medinfer::Task::kMultiClass) {
    const cal::Calibrator t = cal::fit_multiclass_temperature(logit_rows, classes);
    report = {{"task", "multi-class"},
              {"method", "temperature"},
              {"calibration", Json::parse(t.to_json())},
              {"data", {{"count", logit_rows.size()}, {"role", "fitting"}}},
              {"nll_before", cal::multiclass_nll(logit_rows, classes, 1.0)},
              {"nll_after", cal::multiclass_nll(logit_rows, classes, t.parameters()[0])},
              {"note", "temperature fitted by minimising the NLL of softmax(z / T) at the true class"}};
    std::vector<std::size_t> per_class(names.size(), 0);
    for (int c : classes) ++per_class[static_cast<std::size_t>(c)];
    check_fit_size(report["data"], per_class, {});
    calibrators.push_back(t);
    summary = "temperature calibration fitted on " + std::to_string(logit_rows.size()) + " cases; NLL " +
              std::to_string(report["nll_before"].get<double>()) + " -> " + std::to_string(report["nll_after"].get<double>());
  } else {
    Json per_label = Json::array();
    for (std::size_t k = 0; k < names.size(); ++k) {
      cal::Calibrator fitted;
      Json one = fit_and_report(o, raw[k], targets[k], fitted, names.size() > 1 ? names[k] : std::string());
      calibrators.push_back(fitted);
      summary += (summary.empty() ? "" : "; ") + (names.size() > 1 ? names[k] + ": " : std::string()) +
                 one["method"].get<std::string>() + " calibration fitted on " + std::to_string(raw[k].size()) +
                 " cases; ECE " + std::to_string(one["metrics_before"]["ece_positive"].get<double>()) + " -> " +
                 std::to_string(one["metrics_after"]["ece_positive"].get<double>());
      if (task == medinfer::Task::kBinary) {
        report = std::move(one);
      } else {
        one["label"] = names[k];
        per_label.push_back(std::move(one));
      }
    }
    if (task == medinfer::Task::kMultiLabel) report = {{"task", "multi-label"}, {"labels", std::move(per_label)}};
  }

  const fs::path src = fs::path(package->directory());
  // Default: a sibling directory named after the new version, e.g. models/demo -> models/demo-1.2.0.
  const fs::path dst = o.out ? fs::path(*o.out)
                             : fs::path(src.string() + "-" + medinfer::package::next_minor_version(package->identity().version));
  const medinfer::ModelIdentity written = medinfer::package::write_recalibrated(src.string(), calibrators, report.dump(), dst.string());
  if (o.report) write_text(*o.report, read_text_file((dst / "calibration_report.json").string()));
  std::cout << "wrote " << dst.string() << ": " << written.name << " " << written.version << " (manifest sha256 "
            << written.sha256 << "), " << summary << "\n";
  return 0;
}

int run_fit(const FitOptions& o) {
  if (o.model) {
    if (!o.labels) usage_error("calibrate fit --model: --labels labels.csv is required");
    return fit_from_model(o);
  }
  if (!o.out) usage_error("calibrate fit: --out is required");
  if (!o.scores) usage_error("calibrate fit: --scores FILE.csv or --model DIR is required");
  if (o.method.empty()) usage_error("calibrate fit --scores: --method temperature|platt|isotonic|histogram|beta|auto is required");
  std::vector<std::string> header;
  const auto rows = read_csv(*o.scores, {{"score", "label"}}, header);
  std::vector<double> scores;
  std::vector<int> labels;
  for (const auto& row : rows) scores.push_back(parse_score(*o.scores, row, 0)), labels.push_back(parse_label(*o.scores, row, 1));
  cal::Calibrator fitted;
  const Json report = fit_and_report(o, scores, labels, fitted);
  write_text(*o.out, Json::parse(fitted.to_json()).dump(2) + "\n");
  if (o.report) write_text(*o.report, report.dump(2) + "\n");
  std::cout << "wrote " << *o.out << ": " << report["method"].get<std::string>() << " calibration fitted on " << scores.size() << " cases; ECE "
            << report["metrics_before"]["ece_positive"].get<double>() << " -> "
            << report["metrics_after"]["ece_positive"].get<double>() << "\n";
  return 0;
}

int run_apply(const FitOptions& o, const std::string& calibration, const std::string& scores) {
  std::ifstream in(calibration);
  if (!in) throw Error(fs::exists(calibration) ? ErrorCode::kIo : ErrorCode::kNotFound, calibration + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<cal::Calibrator> calibrators;
  try {
    calibrators = cal::parse_calibration(text.str());
  } catch (const Error& e) {
    throw Error(e.code(), calibration + ": " + e.what());
  }
  std::vector<std::string> header;
  const auto rows = read_csv(scores, {{"score"}, {"score", "label"}}, header);
  const bool labelled = header.size() == 2;
  if ((o.report || o.plot) && !labelled) usage_error("calibrate apply: --report/--plot need a 'score,label' file");
  std::vector<double> values;
  std::vector<int> labels;
  for (const auto& row : rows) {  // every row is validated before anything is printed
    values.push_back(parse_score(scores, row, 0));
    if (labelled) labels.push_back(parse_label(scores, row, 1));
  }
  std::ostringstream out;
  out.precision(17);
  for (double v : values) out << calibrators[0].apply(v) << '\n';
  if (o.report || o.plot) {
    std::vector<double> after;
    const Json report = evaluate(o, calibrators[0], values, labels, after, "held-out");
    if (o.report) write_text(*o.report, report.dump(2) + "\n");
  }
  std::cout << out.str();
  return 0;
}

// Options both subcommands take.
void add_evaluation_options(CLI::App* cmd, FitOptions& o) {
  cmd->add_option("--report", o.report, "write the report (JSON) here");
  cmd->add_option("--plot", o.plot, "write a reliability diagram (PNG) here");
  cmd->add_option("--threshold", o.threshold, "the operating threshold of the metrics")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--bootstrap", o.bootstrap, "bootstrap resamples for 95 % intervals (0: none)")
      ->check(CLI::Range(10, 100000) | CLI::IsMember({0}))
      ->capture_default_str();
}

}  // namespace

void add_calibrate_command(CLI::App& app, Runner& run) {
  CLI::App* calibrate = app.add_subcommand("calibrate", "calibrate fit|apply: fits and applies calibrators");
  calibrate->require_subcommand(1);
  auto o = std::make_shared<FitOptions>();
  const auto open_interval = CLI::Range(1e-9, 1 - 1e-9);

  CLI::App* fit = calibrate->add_subcommand(
      "fit", "calibrate fit --scores FILE.csv --method M --out calibration.json | --model DIR --labels labels.csv "
             "[--method M] [--out NEWDIR]: fits a calibrator on raw scores with labels (CSV header \"score,label\"), or "
             "runs the package in DIR on labelled DICOM files and writes the next package version carrying the new "
             "calibration and calibration_report.json");
  fit->add_option("--scores", o->scores, "raw scores with labels: CSV header \"score,label\"");
  fit->add_option("--model", o->model,
                  "a package to recalibrate: binary and multi-label packages get one calibrator per label, multi-class "
                  "ones one temperature");
  fit->add_option("--labels", o->labels,
                  "with --model: CSV \"path,label\" (binary: 0/1; multi-class: a class name) or \"path,LABEL1,...\" "
                  "(multi-label, the package's labels in order, each 0/1)");
  fit->add_option("--method", o->method,
                  "temperature, platt, isotonic, histogram, beta, or auto: the lowest 5-fold cross-validated ECE "
                  "(default with --model: auto)")
      ->check(CLI::IsMember({"temperature", "platt", "isotonic", "histogram", "beta", "auto"}));
  fit->add_option("--out", o->out, "the calibration JSON (--scores), or the new package directory (--model; default "
                                   "DIR-<next version>)");
  fit->add_option("--bins", o->bins, "bins of the histogram method")->check(CLI::Range(1, 1000))->capture_default_str();
  fit->add_option("--target-sensitivity", o->target_sensitivity, "the operating point's target sensitivity")
      ->check(open_interval)
      ->capture_default_str();
  fit->add_option("--delta", o->delta, "the operating point guarantee's error probability")
      ->check(open_interval)
      ->capture_default_str();
  fit->add_option("--alpha", o->alpha, "the split-conformal miscoverage")->check(open_interval)->capture_default_str();
  add_evaluation_options(fit, *o);
  fit->get_option("--scores")->excludes("--model");
  fit->get_option("--labels")->needs("--model");
  fit->callback([o, &run] {
    if (o->method.empty() && o->model) o->method = "auto";  // over a package the method is chosen by cross-validation
    run = [o] { return run_fit(*o); };
  });

  auto files = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* apply = calibrate->add_subcommand(
      "apply", "calibrate apply --calibration calibration.json --scores FILE.csv [--report R.json] [--plot P.png]: "
               "prints one calibrated probability per row of FILE.csv (header \"score\" or \"score,label\"); with "
               "labels, --report/--plot evaluate the calibration on them");
  apply->add_option("--calibration", files->first, "a calibration JSON")->required();
  apply->add_option("--scores", files->second, "CSV header \"score\" or \"score,label\"")->required();
  add_evaluation_options(apply, *o);
  apply->callback([o, files, &run] { run = [o, files] { return run_apply(*o, files->first, files->second); }; });
}
