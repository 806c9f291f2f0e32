// medinfer calibrate fit | apply: fitting calibrators from scores or from a package run over labelled
// DICOM files, with a report (metrics before/after, operating point, conformal threshold) and a plot.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
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

double number_option(const std::string& flag, const std::string& value, double lo, double hi) {
  try {
    std::size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  usage_error(flag + ": '" + value + "' is not a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
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

// --method auto: the method with the lowest mean ECE over 5 folds of the fitting data (fold = index mod 5).
std::string choose_method(const std::vector<double>& scores, const std::vector<int>& labels, int bins, Json& cv) {
  std::string best;
  double best_ece = 0.0;
  cv = Json::object();
  for (cal::Method m : {cal::Method::kTemperature, cal::Method::kPlatt, cal::Method::kIsotonic,
                        cal::Method::kHistogram, cal::Method::kBeta}) {
    double sum = 0.0;
    int folds = 0;
    for (std::size_t k = 0; k < 5; ++k) {
      std::vector<double> fs, vs;
      std::vector<int> fl, vl;
      for (std::size_t i = 0; i < scores.size(); ++i) {
        (i % 5 == k ? vs : fs).push_back(scores[i]);
        (i % 5 == k ? vl : fl).push_back(labels[i]);
      }
      try {
        const cal::Calibrator c = cal::Calibrator::fit(m, fs, fl, bins);
        std::vector<double> p;
        for (double v : vs) p.push_back(c.apply(v));
        sum += cal::compute_metrics(p, vl).ece_positive;
        ++folds;
      } catch (const Error&) {
        // a fold without both classes: skipped
      }
    }
    if (folds == 0) continue;
    cv[cal::to_string(m)] = sum / folds;
    if (best.empty() || sum / folds < best_ece) best = cal::to_string(m), best_ece = sum / folds;
  }
  if (best.empty()) throw Error(ErrorCode::kInvalidArgument, "calibrate fit --method auto: too few cases for 5 folds");
  return best;
}

// Fits and returns the report (and writes the plot).
Json fit_and_report(const FitOptions& o, const std::vector<double>& scores, const std::vector<int>& labels,
                    cal::Calibrator& fitted) {
  Json cv;
  const std::string method = o.method == "auto" ? choose_method(scores, labels, o.bins, cv) : o.method;
  fitted = cal::Calibrator::fit(cal::parse_method(method), scores, labels, o.bins);
  std::vector<double> after;
  Json report = evaluate(o, fitted, scores, labels, after, "fitting");
  if (o.method == "auto") report["method_selection"] = {{"rule", "lowest mean 5-fold cross-validated ECE"}, {"ece", cv}};
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

// The next minor version: a new calibration changes every probability the package gives.
std::string bump_minor(const std::string& version) {
  int major = 0, minor = 0;
  char dot = 0;
  std::istringstream in(version);
  in >> major >> dot >> minor;
  return std::to_string(major) + "." + std::to_string(minor + 1) + ".0";
}

int fit_from_model(const FitOptions& o) {
  if (!o.labels) usage_error("calibrate fit --model: --labels labels.csv is required");
  std::vector<std::string> header;
  const auto rows = read_csv(*o.labels, {{"path", "label"}}, header);
  const fs::path base = fs::path(*o.labels).parent_path();
  const auto pipeline = medinfer::Pipeline::open(*o.model);
  std::vector<double> scores;
  std::vector<int> labels;
  for (const auto& row : rows) {
    const fs::path path = fs::path(row[0]).is_absolute() ? fs::path(row[0]) : base / row[0];
    const int label = parse_label(*o.labels, row, 1);
    try {
      scores.push_back(pipeline.predict(path.string()).raw_score);
    } catch (const Error& e) {
      throw Error(e.code(), *o.labels + " line " + row.back() + ": " + e.what());
    }
    labels.push_back(label);
  }
  cal::Calibrator fitted;
  Json report = fit_and_report(o, scores, labels, fitted);

  const fs::path src = fs::canonical(*o.model);
  const auto source_package = medinfer::ModelPackage::open(src.string());  // the verified manifest
  Json manifest0 = Json::parse(source_package.manifest_text());
  const std::string next_version = bump_minor(manifest0["version"].get<std::string>());
  // Default: a sibling directory named after the new version, e.g. models/demo -> models/demo-1.2.0.
  const fs::path dst = o.out ? fs::path(*o.out) : fs::path(src.string() + "-" + next_version);
  if (fs::exists(dst) && !fs::is_empty(dst)) throw Error(ErrorCode::kIo, dst.string() + ": exists and is not empty");
  fs::create_directories(dst);
  Json manifest = std::move(manifest0);
  const std::string previous = manifest["name"].get<std::string>() + " " + manifest["version"].get<std::string>() +
                               " (manifest sha256 " + pipeline.model().sha256 + ")";
  manifest["version"] = next_version;
  manifest["calibration"] = Json::parse(fitted.to_json());
  report["derived_from"] = previous;
  manifest["files"].erase("calibration_report.json");  // the previous version's report is replaced
  for (const auto& [rel, digest] : manifest["files"].items()) {
    fs::create_directories((dst / rel).parent_path());
    fs::copy_file(src / rel, dst / rel);
    // The copy must be the verified file: a file changed since the package was opened is refused,
    // never re-hashed into the new version.
    if (medinfer::sha256_file((dst / rel).string()) != digest.get<std::string>()) {
      throw Error(ErrorCode::kModelIntegrity, (src / rel).string() + " changed while the new version was written");
    }
  }
  write_text((dst / "calibration_report.json").string(), report.dump(2) + "\n");
  manifest["files"]["calibration_report.json"] = medinfer::sha256_file((dst / "calibration_report.json").string());
  write_text((dst / "manifest.json").string(), manifest.dump(2) + "\n");
  if (o.report) write_text(*o.report, report.dump(2) + "\n");
  const auto check = medinfer::ModelPackage::open(dst.string());  // the new package must open
  std::cout << "wrote " << dst.string() << ": " << check.identity().name << " " << check.identity().version
            << " (manifest sha256 " << check.identity().sha256 << "), " << report["method"].get<std::string>()
            << " calibration fitted on "
            << scores.size() << " cases; ECE " << report["metrics_before"]["ece_positive"].get<double>() << " -> "
            << report["metrics_after"]["ece_positive"].get<double>() << "\n";
  return 0;
}

int run_fit(const std::vector<std::string>& args) {
  FitOptions o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&] { return option_value(args, i); };
    if (a == "--scores") o.scores = value();
    else if (a == "--method") o.method = value();
    else if (a == "--out") o.out = value();
    else if (a == "--report") o.report = value();
    else if (a == "--plot") o.plot = value();
    else if (a == "--model") o.model = value();
    else if (a == "--labels") o.labels = value();
    else if (a == "--bins") o.bins = static_cast<int>(number_option(a, value(), 1, 1000));
    else if (a == "--threshold") o.threshold = number_option(a, value(), 0, 1);
    else if (a == "--target-sensitivity") o.target_sensitivity = number_option(a, value(), 1e-9, 1 - 1e-9);
    else if (a == "--delta") o.delta = number_option(a, value(), 1e-9, 1 - 1e-9);
    else if (a == "--alpha") o.alpha = number_option(a, value(), 1e-9, 1 - 1e-9);
    else if (a == "--bootstrap") o.bootstrap = static_cast<int>(number_option(a, value(), 10, 100000));
    else usage_error("calibrate fit: unknown argument '" + a + "'");
  }
  if (o.scores && o.model) usage_error("calibrate fit: give --scores or --model, not both");
  if (o.method.empty() && o.model) o.method = "auto";  // over a package the method is chosen by cross-validation
  if (o.method.empty()) {
    usage_error("calibrate fit: --method temperature|platt|isotonic|histogram|beta|auto is required");
  }
  if (o.method != "auto") cal::parse_method(o.method);
  if (o.model) return fit_from_model(o);
  if (!o.out) usage_error("calibrate fit: --out is required");
  if (!o.scores) usage_error("calibrate fit: --scores FILE.csv or --model DIR is required");
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

int run_apply(const std::vector<std::string>& args) {
  std::optional<std::string> calibration, scores;
  FitOptions o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&] { return option_value(args, i); };
    if (a == "--calibration") calibration = value();
    else if (a == "--scores") scores = value();
    else if (a == "--report") o.report = value();
    else if (a == "--plot") o.plot = value();
    else if (a == "--threshold") o.threshold = number_option(a, value(), 0, 1);
    else if (a == "--bootstrap") o.bootstrap = static_cast<int>(number_option(a, value(), 10, 100000));
    else usage_error("calibrate apply: unknown argument '" + a + "'");
  }
  if (!calibration || !scores) usage_error("calibrate apply: --calibration FILE and --scores FILE.csv are required");
  std::ifstream in(*calibration);
  if (!in) throw Error(fs::exists(*calibration) ? ErrorCode::kIo : ErrorCode::kNotFound, *calibration + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<cal::Calibrator> calibrators;
  try {
    calibrators = cal::parse_calibration(text.str());
  } catch (const Error& e) {
    throw Error(e.code(), *calibration + ": " + e.what());
  }
  std::vector<std::string> header;
  const auto rows = read_csv(*scores, {{"score"}, {"score", "label"}}, header);
  const bool labelled = header.size() == 2;
  if ((o.report || o.plot) && !labelled) usage_error("calibrate apply: --report/--plot need a 'score,label' file");
  std::vector<double> values;
  std::vector<int> labels;
  for (const auto& row : rows) {  // every row is validated before anything is printed
    values.push_back(parse_score(*scores, row, 0));
    if (labelled) labels.push_back(parse_label(*scores, row, 1));
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

}  // namespace

int run_calibrate(const std::vector<std::string>& args) {
  if (args.empty()) usage_error("calibrate: expected 'fit' or 'apply'");
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "fit") return run_fit(rest);
  if (args[0] == "apply") return run_apply(rest);
  usage_error("calibrate: unknown subcommand '" + args[0] + "' (fit, apply)");
}
