// Calibration and discrimination metrics, and bootstrap intervals.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace medinfer::calibration {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(double num, double den) { return den > 0 ? num / den : kNaN; }

// ROC AUC as the Mann-Whitney statistic with average ranks for ties (= scikit-learn's roc_auc_score).
double roc_auc(const std::vector<double>& p, const std::vector<int>& y) {
  const std::size_t n = p.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] < p[b]; });
  double rank_sum = 0.0, positives = 0.0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && p[order[j]] == p[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (std::size_t k = i; k < j; ++k) {
      if (y[order[k]] == 1) rank_sum += avg_rank, positives += 1.0;
    }
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return kNaN;
  return (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives);
}

void check_inputs(const std::vector<double>& p, const std::vector<int>& y, int bins) {
  if (p.size() != y.size()) {
    throw Error(ErrorCode::kInvalidArgument, "metrics: " + std::to_string(p.size()) + " probabilities but " +
                                                 std::to_string(y.size()) + " labels");
  }
  if (p.empty()) throw Error(ErrorCode::kInvalidArgument, "metrics: no data");
  if (bins < 1 || bins > 1000) throw Error(ErrorCode::kInvalidArgument, "metrics: bins must be in 1..1000");
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= 0.0 && p[i] <= 1.0)) {
      throw Error(ErrorCode::kInvalidArgument, "metrics: probability[" + std::to_string(i) + "] is not in [0, 1]");
    }
    if (y[i] != 0 && y[i] != 1) {
      throw Error(ErrorCode::kInvalidArgument, "metrics: label[" + std::to_string(i) + "] is not 0 or 1");
    }
  }
}

int bin_of(double v, int bins) { return std::min(bins - 1, static_cast<int>(v * bins)); }

}  // namespace

Metrics compute_metrics(const std::vector<double>& p, const std::vector<int>& y, double threshold, int bins) {
  check_inputs(p, y, bins);
  const std::size_t n = p.size();
  const double N = static_cast<double>(n);
  Metrics m;
  m.count = n;
  m.threshold = threshold;
  std::vector<double> psum(bins, 0.0), ysum(bins, 0.0), cnt(bins, 0.0), csum(bins, 0.0), asum(bins, 0.0), ccnt(bins, 0.0);
  double tp = 0, fp = 0, tn = 0, fn = 0;
  for (std::size_t i = 0; i < n; ++i) {
    m.positives += static_cast<std::size_t>(y[i]);
    const int b = bin_of(p[i], bins);
    psum[b] += p[i], ysum[b] += y[i], cnt[b] += 1.0;
    const double conf = std::max(p[i], 1.0 - p[i]);
    const int predicted = p[i] >= 0.5 ? 1 : 0;
    const int cb = bin_of(conf, bins);
    csum[cb] += conf, asum[cb] += (predicted == y[i]) ? 1.0 : 0.0, ccnt[cb] += 1.0;
    m.brier += (p[i] - y[i]) * (p[i] - y[i]) / N;
    const double eps = std::numeric_limits<double>::epsilon();  // scikit-learn 1.2 log_loss eps="auto"
    const double pc = std::min(1.0 - eps, std::max(eps, p[i]));
    m.nll -= (y[i] ? std::log(pc) : std::log(1.0 - pc)) / N;
    const bool pos = p[i] >= threshold;
    if (pos && y[i]) tp += 1;
    if (pos && !y[i]) fp += 1;
    if (!pos && !y[i]) tn += 1;
    if (!pos && y[i]) fn += 1;
  }
  for (int b = 0; b < bins; ++b) {
    ReliabilityBin rb;
    rb.lower = static_cast<double>(b) / bins;
    rb.upper = static_cast<double>(b + 1) / bins;
    rb.count = static_cast<std::size_t>(cnt[b]);
    if (cnt[b] > 0) {
      rb.mean_probability = psum[b] / cnt[b];
      rb.fraction_positive = ysum[b] / cnt[b];
      const double gap = std::fabs(rb.mean_probability - rb.fraction_positive);
      m.ece_positive += cnt[b] / N * gap;
      m.mce = std::max(m.mce, gap);
    }
    if (ccnt[b] > 0) m.ece_top_label += ccnt[b] / N * std::fabs(csum[b] / ccnt[b] - asum[b] / ccnt[b]);
    m.bins.push_back(rb);
  }
  // Equal-mass bins: sorted by p, split like numpy.array_split (the first n % bins bins one larger).
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] < p[b]; });
  const std::size_t base = n / bins, extra = n % bins;
  for (std::size_t b = 0, start = 0; b < static_cast<std::size_t>(bins); ++b) {
    const std::size_t size = base + (b < extra ? 1 : 0);
    if (size == 0) continue;
    double ps = 0, ys = 0;
    for (std::size_t k = start; k < start + size; ++k) ps += p[order[k]], ys += y[order[k]];
    m.ece_equal_mass += static_cast<double>(size) / N * std::fabs(ps / size - ys / size);
    start += size;
  }
  m.auc = roc_auc(p, y);
  m.sensitivity = ratio(tp, tp + fn);
  m.specificity = ratio(tn, tn + fp);
  m.ppv = ratio(tp, tp + fp);
  m.npv = ratio(tn, tn + fn);
  return m;
}

std::map<std::string, Interval> bootstrap_intervals(const std::vector<double>& p, const std::vector<int>& y,
                                                    double threshold, int resamples, std::uint64_t seed,
                                                    double level) {
  check_inputs(p, y, 15);
  if (resamples < 10 || resamples > 100000) {
    throw Error(ErrorCode::kInvalidArgument, "bootstrap: resamples must be in 10..100000");
  }
  if (!(level > 0.0 && level < 1.0)) throw Error(ErrorCode::kInvalidArgument, "bootstrap: level must be in (0, 1)");
  const char* names[] = {"ece_positive", "ece_top_label", "brier", "nll", "auc",
                         "sensitivity",  "specificity",   "ppv",   "npv"};
  std::map<std::string, std::vector<double>> draws;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, p.size() - 1);
  std::vector<double> bp(p.size());
  std::vector<int> by(p.size());
  for (int r = 0; r < resamples; ++r) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const std::size_t k = pick(rng);
      bp[i] = p[k], by[i] = y[k];
    }
    const Metrics m = compute_metrics(bp, by, threshold);
    const double values[] = {m.ece_positive, m.ece_top_label, m.brier, m.nll, m.auc,
                             m.sensitivity,  m.specificity,   m.ppv,   m.npv};
    for (std::size_t j = 0; j < 9; ++j) {
      if (std::isfinite(values[j])) draws[names[j]].push_back(values[j]);
    }
  }
  auto quantile = [](std::vector<double>& v, double q) {  // numpy's default (linear) percentile
    std::sort(v.begin(), v.end());
    const double pos = q * static_cast<double>(v.size() - 1);
    const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  };
  std::map<std::string, Interval> out;
  for (auto& [name, v] : draws) {
    if (v.empty()) continue;
    out[name] = {quantile(v, (1.0 - level) / 2.0), quantile(v, 1.0 - (1.0 - level) / 2.0)};
  }
  return out;
}

}  // namespace medinfer::calibration

namespace medinfer::calibration {
namespace {

// P(X <= k) for X ~ Binomial(n, q), summed in log space (n up to millions is fine).
double binomial_cdf(std::size_t k, std::size_t n, double q) {
  if (q <= 0.0) return 1.0;
  if (q >= 1.0) return k >= n ? 1.0 : 0.0;
  double total = 0.0;
  const double lq = std::log(q), l1q = std::log1p(-q);
  for (std::size_t i = 0; i <= k && i <= n; ++i) {
    const double log_term = std::lgamma(static_cast<double>(n) + 1) - std::lgamma(static_cast<double>(i) + 1) -
                            std::lgamma(static_cast<double>(n - i) + 1) + static_cast<double>(i) * lq +
                            static_cast<double>(n - i) * l1q;
    total += std::exp(log_term);
  }
  return std::min(1.0, total);
}

}  // namespace

OperatingPoint sensitivity_operating_point(const std::vector<double>& p, const std::vector<int>& y, double target,
                                           double delta) {
  check_inputs(p, y, 15);
  if (!(target > 0.0 && target < 1.0)) throw Error(ErrorCode::kInvalidArgument, "operating point: target must be in (0, 1)");
  if (!(delta > 0.0 && delta < 1.0)) throw Error(ErrorCode::kInvalidArgument, "operating point: delta must be in (0, 1)");
  std::vector<double> pos;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (y[i] == 1) pos.push_back(p[i]);
  }
  if (pos.empty()) throw Error(ErrorCode::kInvalidArgument, "operating point: no positive cases");
  std::sort(pos.begin(), pos.end());
  const std::size_t n = pos.size();
  OperatingPoint op;
  op.target_sensitivity = target;
  op.delta = delta;
  // Threshold t = pos[k] misses the k positives below it; sensitivity (n − k) / n.
  for (std::size_t k = 0; k < n; ++k) {
    if (k > 0 && pos[k] == pos[k - 1]) continue;
    if (static_cast<double>(n - k) / n >= target) op.threshold_empirical = pos[k];
  }
  // Fixed-sequence test from the lowest threshold upwards; stop at the first non-rejection.
  for (std::size_t k = 0; k < n; ++k) {
    if (k > 0 && pos[k] == pos[k - 1]) continue;
    const double p_value = binomial_cdf(k, n, 1.0 - target);  // misses as small as k when the miss rate is 1 − target
    if (p_value > delta) break;
    op.threshold_guaranteed = pos[k];
    op.guaranteed = true;
  }
  op.at_empirical = compute_metrics(p, y, op.threshold_empirical);
  op.at_empirical.bins.clear();
  op.at_guaranteed = compute_metrics(p, y, op.guaranteed ? op.threshold_guaranteed : 0.0);
  op.at_guaranteed.bins.clear();
  return op;
}

ConformalThreshold conformal_threshold(const std::vector<double>& p, const std::vector<int>& y, double alpha) {
  check_inputs(p, y, 15);
  if (!(alpha > 0.0 && alpha < 1.0)) throw Error(ErrorCode::kInvalidArgument, "conformal: alpha must be in (0, 1)");
  const std::size_t n = p.size();
  std::vector<double> scores(n);
  for (std::size_t i = 0; i < n; ++i) scores[i] = y[i] == 1 ? 1.0 - p[i] : p[i];
  std::sort(scores.begin(), scores.end());
  ConformalThreshold c;
  c.alpha = alpha;
  const auto rank = static_cast<std::size_t>(std::ceil((static_cast<double>(n) + 1.0) * (1.0 - alpha)));
  c.qhat = rank > n ? 1.0 : scores[rank - 1];
  std::size_t covered = 0, both = 0, empty = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool has_pos = 1.0 - p[i] <= c.qhat, has_neg = p[i] <= c.qhat;
    covered += (y[i] == 1 ? has_pos : has_neg) ? 1 : 0;
    both += (has_pos && has_neg) ? 1 : 0;
    empty += (!has_pos && !has_neg) ? 1 : 0;
  }
  c.empirical_coverage = static_cast<double>(covered) / n;
  c.fraction_both = static_cast<double>(both) / n;
  c.fraction_empty = static_cast<double>(empty) / n;
  return c;
}

}  // namespace medinfer::calibration
