// Calibration: turning a model's raw score (a logit) into a probability that means what it says;
// fitting calibrators on labelled scores, and measuring calibration and discrimination.
#pragma once

#include <medinfer/export.hpp>
#include <medinfer/model_identity.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace medinfer::calibration {

enum class Method { kTemperature, kPlatt, kIsotonic, kHistogram, kBeta };

/// "temperature", "platt", "isotonic", "histogram", "beta".
MEDINFER_API const char* to_string(Method method) noexcept;
/// The inverse of to_string; Error(kInvalidArgument) naming the accepted names otherwise.
MEDINFER_API Method parse_method(const std::string& name);

/// A fitted calibrator for one label: maps a raw score s (a logit) to a probability. A value type;
/// const members are thread-safe. Stored in the package as JSON (to_json / parse_calibration).
///
/// | method | probability | parameters |
/// |---|---|---|
/// | temperature | sigmoid(s / T) | T > 0 |
/// | platt | 1 / (1 + exp(a·s + b)) (scikit-learn's sign convention) | a, b |
/// | isotonic | linear interpolation of (x_i, y_i), clipped outside [x_0, x_n] (scikit-learn's IsotonicRegression) | x ascending, y non-decreasing in [0, 1] |
/// | histogram | the value of the equal-width bin of sigmoid(s) | edges 0 = e_0 < … < e_n = 1, values in [0, 1] |
/// | beta | sigmoid(a·ln p − b·ln(1 − p) + c), p = sigmoid(s) (Kull et al. 2017) | a, b ≥ 0, c |
class MEDINFER_API Calibrator {
 public:
  /// The identity calibration: temperature 1.
  Calibrator();
  /// Each factory validates its parameters: Error(kInvalidArgument) naming the parameter.
  static Calibrator temperature(double t);
  static Calibrator platt(double a, double b);
  static Calibrator isotonic(std::vector<double> x, std::vector<double> y);
  static Calibrator histogram(std::vector<double> edges, std::vector<double> values);
  static Calibrator beta(double a, double b, double c);

  /// Fits `method` on raw scores and 0/1 labels (both classes present, all scores finite):
  /// temperature by minimising the NLL; Platt as scikit-learn's sigmoid calibration (Platt's smoothed
  /// targets); isotonic by pool-adjacent-violators on the scores; histogram binning with `bins`
  /// equal-width bins of sigmoid(s) (an empty bin keeps its midpoint); beta by logistic regression on
  /// (ln p, −ln(1 − p)), refitted without a feature whose coefficient comes out negative.
  /// Throws Error(kInvalidArgument) for mismatched lengths, too few or one-class labels, bad values.
  static Calibrator fit(Method method, const std::vector<double>& scores, const std::vector<int>& labels,
                        int bins = 15);

  Method method() const noexcept { return method_; }
  /// T; a, b; a, b, c (empty for isotonic and histogram).
  const std::vector<double>& parameters() const noexcept { return params_; }
  /// Isotonic: thresholds x; histogram: edges.
  const std::vector<double>& knots() const noexcept { return x_; }
  /// Isotonic: values y; histogram: bin values.
  const std::vector<double>& values() const noexcept { return y_; }

  /// The calibrated probability in [0, 1]. Error(kInvalidArgument) for a non-finite score.
  double apply(double score) const;
  /// {"method": "...", ...parameters}: the manifest's "calibration" object.
  std::string to_json() const;

 private:
  Method method_;
  std::vector<double> params_, x_, y_;
};

/// Parses a "calibration" object (or an array of one object per label; `label_count` of them).
/// Refuses NaN or infinite values, non-monotonic isotonic values, out-of-range probabilities and a
/// wrong number of calibrators with Error(kInvalidArgument) naming the field.
MEDINFER_API std::vector<Calibrator> parse_calibration(const std::string& json_text, std::size_t label_count = 1);

/// The calibration a package of `task` with `label_count` labels carries, and the one rule for it:
/// binary, one calibrator; multi-label, one per label in label order; multi-class, exactly one, a
/// temperature T applied to all logits at once (softmax(z / T)). Throws Error(kInvalidArgument) naming
/// `where` when `calibrators` do not fit.
MEDINFER_API void check_for_task(const std::vector<Calibrator>& calibrators, Task task, std::size_t label_count,
                                 const std::string& where = "calibration");
/// Parses a package's "calibration" value for a task (parse_calibration, then check_for_task).
MEDINFER_API std::vector<Calibrator> parse_calibration(const std::string& json_text, Task task,
                                                      std::size_t label_count);
/// The package's "calibration" value for `calibrators` (checked with check_for_task): an object for
/// binary and multi-class, an array of one object per label for multi-label.
MEDINFER_API std::string to_json(const std::vector<Calibrator>& calibrators, Task task);
/// The calibrated probability of each label from the model's logits (one per label), for `task`:
/// calibrators[k].apply(logit[k]) for binary and multi-label; softmax(logits / T) for multi-class (sums
/// to 1). Every probability the library reports is computed here. Throws Error(kInvalidArgument) for
/// a logit count that does not match, or a non-finite logit.
MEDINFER_API std::vector<double> probabilities(const std::vector<Calibrator>& calibrators, Task task,
                                               const std::vector<float>& logits);
/// Fits the multi-class temperature: the T minimising the mean negative log-likelihood of
/// softmax(z / T) at the true class (`classes[i]` indexes `logits[i]`), searched over T in
/// [e^-5, e^5]. Throws Error(kInvalidArgument) for no data, ragged logits, fewer than 2 classes, a class
/// out of range or a non-finite logit.
MEDINFER_API Calibrator fit_multiclass_temperature(const std::vector<std::vector<double>>& logits,
                                                   const std::vector<int>& classes);
/// The mean negative log-likelihood of softmax(z / temperature) at the true class: what
/// fit_multiclass_temperature minimises, and what a report shows before (T = 1) and after. Throws as
/// fit_multiclass_temperature for bad data, and Error(kInvalidArgument) for a temperature <= 0.
MEDINFER_API double multiclass_nll(const std::vector<std::vector<double>>& logits, const std::vector<int>& classes,
                                   double temperature);

/// Which method `select_method` chose, and each method's mean cross-validated ECE.
struct MethodSelection {
  Method method = Method::kTemperature;
  std::map<std::string, double> mean_ece;  ///< by method name; methods that could not be fitted are absent
  int folds = 5;
};
/// The method with the lowest mean ECE (ece_positive) over 5 folds of the data (fold = index mod 5),
/// each method fitted on the other four folds with `bins` bins; a fold whose training part lacks a class
/// is skipped for that method, and a method that cannot be fitted on all the data is not a candidate.
/// Throws Error(kInvalidArgument) when no method can be fitted.
MEDINFER_API MethodSelection select_method(const std::vector<double>& scores, const std::vector<int>& labels,
                                           int bins = 15);

/// One bin of a reliability diagram.
struct ReliabilityBin {
  double lower = 0.0, upper = 0.0;
  std::size_t count = 0;
  double mean_probability = 0.0;   ///< mean predicted p(positive) in the bin
  double fraction_positive = 0.0;  ///< observed frequency of label 1 in the bin
};

/// Calibration and discrimination of probabilities against 0/1 labels.
struct Metrics {
  std::size_t count = 0, positives = 0;
  double ece_positive = 0.0;    ///< 15 equal-width bins over p(positive): Σ n_b/N · |mean p − mean y|
  double ece_top_label = 0.0;   ///< 15 equal-width bins over max(p, 1 − p) against accuracy of p ≥ 0.5
  double ece_equal_mass = 0.0;  ///< 15 bins of (nearly) equal count over sorted p(positive)
  double mce = 0.0;             ///< max over non-empty equal-width bins of |mean p − mean y|
  double brier = 0.0;           ///< mean (p − y)²
  double nll = 0.0;             ///< mean −log-likelihood, p clipped to [ε, 1 − ε], ε = DBL_EPSILON (as scikit-learn 1.2)
  double auc = 0.0;             ///< ROC AUC (ties count half); NaN with one class
  double threshold = 0.5;       ///< the operating threshold of the four below (p ≥ threshold is positive)
  double sensitivity = 0.0, specificity = 0.0, ppv = 0.0, npv = 0.0;  ///< NaN when undefined
  std::vector<ReliabilityBin> bins;  ///< the equal-width bins of ece_positive
};

/// Computes Metrics with `bins` bins. Error(kInvalidArgument) for mismatched lengths, no data,
/// probabilities outside [0, 1] or labels other than 0/1 (naming the index).
MEDINFER_API Metrics compute_metrics(const std::vector<double>& probabilities, const std::vector<int>& labels,
                                     double threshold = 0.5, int bins = 15);

struct Interval {
  double low = 0.0, high = 0.0;
};

/// Percentile bootstrap intervals (`level`, default 95 %) for ece_positive, ece_top_label, brier,
/// nll, auc, sensitivity, specificity, ppv, npv: `resamples` resamples with replacement drawn with a
/// seeded generator (reproducible). Resamples where a metric is undefined are skipped for it.
MEDINFER_API std::map<std::string, Interval> bootstrap_intervals(const std::vector<double>& probabilities,
                                                                 const std::vector<int>& labels,
                                                                 double threshold = 0.5, int resamples = 1000,
                                                                 std::uint64_t seed = 0, double level = 0.95);

/// A decision threshold chosen on labelled data to reach a target sensitivity.
struct OperatingPoint {
  double target_sensitivity = 0.9;
  double delta = 0.05;               ///< the guarantee's error probability
  double threshold_empirical = 0.0;  ///< the highest threshold whose sensitivity on the data is >= target
  double threshold_guaranteed = 0.0; ///< Learn-then-Test: sensitivity >= target with probability >= 1 - delta
  bool guaranteed = false;           ///< false when no threshold passes the test (too few positives)
  Metrics at_empirical, at_guaranteed;  ///< metrics on the data at each threshold
};

/// Chooses thresholds on calibrated probabilities `p` for a target sensitivity. The guaranteed one
/// follows Learn-then-Test with fixed-sequence testing: candidate thresholds (the distinct positive
/// probabilities) from low to high, each tested for H0 "miss rate > 1 − target" with an exact binomial
/// p-value on the positives; the last one rejected at level `delta` is returned. Valid when future
/// cases are exchangeable with these. Error(kInvalidArgument) for a target outside (0, 1) or no positives.
MEDINFER_API OperatingPoint sensitivity_operating_point(const std::vector<double>& p, const std::vector<int>& labels,
                                                        double target_sensitivity = 0.9, double delta = 0.05);

/// Split-conformal calibration for binary prediction sets: nonconformity 1 − p(true class); qhat is the
/// ceil((n + 1)(1 − alpha))-th smallest (1 when that exceeds n). A new case's set holds each class c
/// with 1 − p(c) <= qhat, and contains the true class with probability >= 1 − alpha (marginally,
/// under exchangeability).
struct ConformalThreshold {
  double alpha = 0.1;
  double qhat = 1.0;
  double empirical_coverage = 0.0;  ///< on the fitting data
  double fraction_both = 0.0;       ///< sets holding both classes (ambiguous)
  double fraction_empty = 0.0;
};
MEDINFER_API ConformalThreshold conformal_threshold(const std::vector<double>& p, const std::vector<int>& labels,
                                                    double alpha = 0.1);

/// Writes a reliability diagram as a PNG: bins (bars of observed frequency, with counts), the
/// diagonal, and, when `after` has bins, a second series for the calibrated probabilities.
/// Error(kIo) when the file cannot be written.
MEDINFER_API void write_reliability_png(const std::string& path, const Metrics& before, const Metrics& after,
                                        const std::string& title);

}  // namespace medinfer::calibration
