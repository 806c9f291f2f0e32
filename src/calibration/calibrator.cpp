// Calibrators: application, validation, JSON, and fitting (Newton's method on convex losses, PAV).
#include <medinfer/error.hpp>

#include "calibration/calibration_json.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace medinfer::calibration {
namespace {

using medinfer::detail::Json;

[[noreturn]] void invalid(const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "calibration." + field + ": " + what);
}

void require_finite(double v, const std::string& field) {
  if (!std::isfinite(v)) invalid(field, "must be finite");
}

double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// log(1 + exp(x)) without overflow.
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

void check_data(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size()) {
    throw Error(ErrorCode::kInvalidArgument, "calibration fit: " + std::to_string(scores.size()) + " scores but " +
                                                 std::to_string(labels.size()) + " labels");
  }
  std::size_t pos = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      throw Error(ErrorCode::kInvalidArgument, "calibration fit: score[" + std::to_string(i) + "] is not finite");
    }
    if (labels[i] != 0 && labels[i] != 1) {
      throw Error(ErrorCode::kInvalidArgument, "calibration fit: label[" + std::to_string(i) + "] is " +
                                                   std::to_string(labels[i]) + ", not 0 or 1");
    }
    pos += static_cast<std::size_t>(labels[i]);
  }
  if (scores.size() < 2 || pos == 0 || pos == scores.size()) {
    throw Error(ErrorCode::kInvalidArgument, "calibration fit: needs both classes (got " + std::to_string(pos) +
                                                 " positives of " + std::to_string(scores.size()) + ")");
  }
}

// Minimises Σ w_i·[softplus(z_i) − t_i·z_i] with z = X·θ (logistic loss with soft targets t) by
// Newton's method with step halving. X is row-major n × k (k ≤ 3). Convex: converges to the optimum.
std::vector<double> newton_logistic(const std::vector<double>& X, std::size_t k, const std::vector<double>& t,
                                    std::vector<double> theta) {
  const std::size_t n = t.size();
  auto loss = [&](const std::vector<double>& th) {
    double l = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      double z = 0.0;
      for (std::size_t j = 0; j < k; ++j) z += X[i * k + j] * th[j];
      l += softplus(z) - t[i] * z;
    }
    return l;
  };
  double current = loss(theta);
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<double> g(k, 0.0), H(k * k, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      double z = 0.0;
      for (std::size_t j = 0; j < k; ++j) z += X[i * k + j] * theta[j];
      const double p = sigmoid(z), r = p - t[i], w = p * (1.0 - p);
      for (std::size_t a = 0; a < k; ++a) {
        g[a] += r * X[i * k + a];
        for (std::size_t b = 0; b < k; ++b) H[a * k + b] += w * X[i * k + a] * X[i * k + b];
      }
    }
    for (std::size_t a = 0; a < k; ++a) H[a * k + a] += 1e-12;  // keeps a separable problem solvable
    // Solve H·d = g (Gaussian elimination with partial pivoting; k ≤ 3).
    std::vector<double> A = H, d = g;
    for (std::size_t c = 0; c < k; ++c) {
      std::size_t piv = c;
      for (std::size_t r = c + 1; r < k; ++r) {
        if (std::fabs(A[r * k + c]) > std::fabs(A[piv * k + c])) piv = r;
      }
      for (std::size_t j = 0; j < k; ++j) std::swap(A[c * k + j], A[piv * k + j]);
      std::swap(d[c], d[piv]);
      for (std::size_t r = c + 1; r < k; ++r) {
        const double f = A[r * k + c] / A[c * k + c];
        for (std::size_t j = c; j < k; ++j) A[r * k + j] -= f * A[c * k + j];
        d[r] -= f * d[c];
      }
    }
    for (std::size_t c = k; c-- > 0;) {
      for (std::size_t j = c + 1; j < k; ++j) d[c] -= A[c * k + j] * d[j];
      d[c] /= A[c * k + c];
    }
    double step = 1.0, next = current;
    std::vector<double> candidate(k);
    for (int halving = 0; halving < 60; ++halving, step /= 2) {
      for (std::size_t j = 0; j < k; ++j) candidate[j] = theta[j] - step * d[j];
      next = loss(candidate);
      if (next <= current) break;
    }
    if (!(next <= current)) break;
    const double change = current - next;
    theta = candidate;
    current = next;
    double gnorm = 0.0;
    for (double v : g) gnorm = std::max(gnorm, std::fabs(v));
    if (gnorm < 1e-10 * static_cast<double>(n) || change < 1e-15 * std::max(1.0, std::fabs(current))) break;
  }
  return theta;
}

}  // namespace

const char* to_string(Method m) noexcept {
  switch (m) {
    case Method::kTemperature: return "temperature";
    case Method::kPlatt: return "platt";
    case Method::kIsotonic: return "isotonic";
    case Method::kHistogram: return "histogram";
    case Method::kBeta: return "beta";
  }
  return "unknown";
}

Method parse_method(const std::string& name) {
  for (Method m : {Method::kTemperature, Method::kPlatt, Method::kIsotonic, Method::kHistogram, Method::kBeta}) {
    if (name == to_string(m)) return m;
  }
  throw Error(ErrorCode::kInvalidArgument,
              "calibration.method: '" + name + "' is not one of temperature, platt, isotonic, histogram, beta");
}

Calibrator::Calibrator() : method_(Method::kTemperature), params_{1.0} {}

Calibrator Calibrator::temperature(double t) {
  require_finite(t, "temperature");
  if (t <= 0.0) invalid("temperature", "must be > 0 (got " + std::to_string(t) + ")");
  Calibrator c;
  c.params_ = {t};
  return c;
}

Calibrator Calibrator::platt(double a, double b) {
  require_finite(a, "a");
  require_finite(b, "b");
  Calibrator c;
  c.method_ = Method::kPlatt;
  c.params_ = {a, b};
  return c;
}

Calibrator Calibrator::isotonic(std::vector<double> x, std::vector<double> y) {
  if (x.empty() || x.size() != y.size()) invalid("x", "x and y must be non-empty and of equal length");
  for (std::size_t i = 0; i < x.size(); ++i) {
    require_finite(x[i], "x[" + std::to_string(i) + "]");
    require_finite(y[i], "y[" + std::to_string(i) + "]");
    if (y[i] < 0.0 || y[i] > 1.0) invalid("y[" + std::to_string(i) + "]", "must be in [0, 1]");
    if (i > 0 && !(x[i] > x[i - 1])) invalid("x[" + std::to_string(i) + "]", "x must be strictly increasing");
    if (i > 0 && y[i] < y[i - 1]) invalid("y[" + std::to_string(i) + "]", "y must be non-decreasing (monotonic)");
  }
  Calibrator c;
  c.method_ = Method::kIsotonic;
  c.params_.clear();
  c.x_ = std::move(x);
  c.y_ = std::move(y);
  return c;
}

Calibrator Calibrator::histogram(std::vector<double> edges, std::vector<double> values) {
  if (values.empty() || edges.size() != values.size() + 1) invalid("edges", "needs one more edge than values");
  for (std::size_t i = 0; i < edges.size(); ++i) {
    require_finite(edges[i], "edges[" + std::to_string(i) + "]");
    if (i > 0 && !(edges[i] > edges[i - 1])) invalid("edges[" + std::to_string(i) + "]", "must be strictly increasing");
  }
  if (edges.front() != 0.0 || edges.back() != 1.0) invalid("edges", "must start at 0 and end at 1");
  for (std::size_t i = 0; i < values.size(); ++i) {
    require_finite(values[i], "values[" + std::to_string(i) + "]");
    if (values[i] < 0.0 || values[i] > 1.0) invalid("values[" + std::to_string(i) + "]", "must be in [0, 1]");
  }
  Calibrator c;
  c.method_ = Method::kHistogram;
  c.params_.clear();
  c.x_ = std::move(edges);
  c.y_ = std::move(values);
  return c;
}

Calibrator Calibrator::beta(double a, double b, double cc) {
  require_finite(a, "a");
  require_finite(b, "b");
  require_finite(cc, "c");
  if (a < 0.0) invalid("a", "must be >= 0 (a negative coefficient makes the map non-monotonic)");
  if (b < 0.0) invalid("b", "must be >= 0 (a negative coefficient makes the map non-monotonic)");
  Calibrator c;
  c.method_ = Method::kBeta;
  c.params_ = {a, b, cc};
  return c;
}

double Calibrator::apply(double s) const {
  if (!std::isfinite(s)) throw Error(ErrorCode::kInvalidArgument, "calibration: the score is not finite");
  switch (method_) {
    case Method::kTemperature: return sigmoid(s / params_[0]);
    case Method::kPlatt: return sigmoid(-(params_[0] * s + params_[1]));
    case Method::kIsotonic: {
      if (s <= x_.front()) return y_.front();
      if (s >= x_.back()) return y_.back();
      const auto it = std::upper_bound(x_.begin(), x_.end(), s);
      const std::size_t i = static_cast<std::size_t>(it - x_.begin());
      const double f = (s - x_[i - 1]) / (x_[i] - x_[i - 1]);
      return y_[i - 1] + f * (y_[i] - y_[i - 1]);
    }
    case Method::kHistogram: {
      const double p = sigmoid(s);
      const auto it = std::upper_bound(x_.begin() + 1, x_.end() - 1, p);
      return y_[static_cast<std::size_t>(it - (x_.begin() + 1))];
    }
    case Method::kBeta: {
      // a·ln p − b·ln(1 − p) + c with ln p = −softplus(−s) and −ln(1 − p) = softplus(s)
      return sigmoid(-params_[0] * softplus(-s) + params_[1] * softplus(s) + params_[2]);
    }
  }
  return 0.0;
}

std::string Calibrator::to_json() const {
  nlohmann::ordered_json j;
  j["method"] = to_string(method_);
  switch (method_) {
    case Method::kTemperature: j["temperature"] = params_[0]; break;
    case Method::kPlatt: j["a"] = params_[0], j["b"] = params_[1]; break;
    case Method::kIsotonic: j["x"] = x_, j["y"] = y_; break;
    case Method::kHistogram: j["edges"] = x_, j["values"] = y_; break;
    case Method::kBeta: j["a"] = params_[0], j["b"] = params_[1], j["c"] = params_[2]; break;
  }
  return j.dump();
}

Calibrator Calibrator::fit(Method method, const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
  check_data(scores, labels);
  const std::size_t n = scores.size();
  std::vector<double> y(labels.begin(), labels.end());
  switch (method) {
    case Method::kTemperature: {
      // z = β·s with β = 1/T: one-feature logistic regression without intercept.
      const double beta = newton_logistic(scores, 1, y, {1.0})[0];
      if (!(beta > 0.0) || !std::isfinite(beta)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "calibration fit: the scores are anti-correlated with the labels; temperature scaling needs "
                    "T > 0");
      }
      return temperature(1.0 / beta);
    }
    case Method::kPlatt: {
      // scikit-learn's _sigmoid_calibration: Platt's smoothed targets, p = 1 / (1 + exp(A·s + B)).
      const double prior1 = std::accumulate(y.begin(), y.end(), 0.0), prior0 = static_cast<double>(n) - prior1;
      std::vector<double> t(n), X(2 * n);
      for (std::size_t i = 0; i < n; ++i) {
        t[i] = y[i] > 0 ? (prior1 + 1.0) / (prior1 + 2.0) : 1.0 / (prior0 + 2.0);
        X[2 * i] = -scores[i];  // z = −(A·s + B)
        X[2 * i + 1] = -1.0;
      }
      const auto ab = newton_logistic(X, 2, t, {0.0, std::log((prior0 + 1.0) / (prior1 + 1.0))});
      return platt(ab[0], ab[1]);
    }
    case Method::kIsotonic: {
      // scikit-learn: sort by score, average the labels of tied scores (weighted), then PAV.
      std::vector<std::size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return scores[a] < scores[b]; });
      std::vector<double> ux, uy, uw;
      for (std::size_t k : order) {
        if (!ux.empty() && scores[k] == ux.back()) {
          uy.back() += y[k];
          uw.back() += 1.0;
        } else {
          ux.push_back(scores[k]);
          uy.push_back(y[k]);
          uw.push_back(1.0);
        }
      }
      for (std::size_t i = 0; i < uy.size(); ++i) uy[i] /= uw[i];
      // Pool adjacent violators over blocks (value, weight, length).
      std::vector<double> bv, bw;
      std::vector<std::size_t> bl;
      for (std::size_t i = 0; i < uy.size(); ++i) {
        bv.push_back(uy[i]);
        bw.push_back(uw[i]);
        bl.push_back(1);
        while (bv.size() > 1 && bv[bv.size() - 2] > bv.back()) {
          const double w = bw[bw.size() - 2] + bw.back();
          const double v = (bv[bv.size() - 2] * bw[bw.size() - 2] + bv.back() * bw.back()) / w;
          const std::size_t l = bl[bl.size() - 2] + bl.back();
          bv.pop_back(), bw.pop_back(), bl.pop_back();
          bv.back() = v, bw.back() = w, bl.back() = l;
        }
      }
      std::vector<double> fitted;
      for (std::size_t b = 0; b < bv.size(); ++b) fitted.insert(fitted.end(), bl[b], bv[b]);
      // Keep the first and last point of each constant run (scikit-learn drops the interior ones).
      std::vector<double> kx, ky;
      for (std::size_t i = 0; i < fitted.size(); ++i) {
        const bool interior = i > 0 && i + 1 < fitted.size() && fitted[i - 1] == fitted[i] && fitted[i] == fitted[i + 1];
        if (!interior) kx.push_back(ux[i]), ky.push_back(std::min(1.0, std::max(0.0, fitted[i])));
      }
      return isotonic(kx, ky);
    }
    case Method::kHistogram: {
      if (bins < 1 || bins > 1000) throw Error(ErrorCode::kInvalidArgument, "calibration fit: bins must be in 1..1000");
      std::vector<double> edges(static_cast<std::size_t>(bins) + 1), sum(bins, 0.0), count(bins, 0.0);
      for (int b = 0; b <= bins; ++b) edges[b] = static_cast<double>(b) / bins;
      for (std::size_t i = 0; i < n; ++i) {
        const int b = std::min(bins - 1, static_cast<int>(sigmoid(scores[i]) * bins));
        sum[b] += y[i];
        count[b] += 1.0;
      }
      std::vector<double> values(bins);
      for (int b = 0; b < bins; ++b) values[b] = count[b] > 0 ? sum[b] / count[b] : (edges[b] + edges[b + 1]) / 2.0;
      return histogram(edges, values);
    }
    case Method::kBeta: {
      // Features ln p and −ln(1 − p) of p = sigmoid(s), plus an intercept (betacal's "abm" model).
      auto fit_with = [&](bool use_a, bool use_b) {
        const std::size_t k = 1 + use_a + use_b;
        std::vector<double> X;
        X.reserve(n * k);
        for (std::size_t i = 0; i < n; ++i) {
          if (use_a) X.push_back(-softplus(-scores[i]));
          if (use_b) X.push_back(softplus(scores[i]));
          X.push_back(1.0);
        }
        const auto th = newton_logistic(X, k, y, std::vector<double>(k, 0.0));
        std::size_t j = 0;
        const double a = use_a ? th[j++] : 0.0, b = use_b ? th[j++] : 0.0;
        return std::vector<double>{a, b, th[j]};
      };
      auto abc = fit_with(true, true);
      if (abc[0] < 0.0 && abc[1] < 0.0) {
        abc = fit_with(false, false);
      } else if (abc[0] < 0.0) {
        abc = fit_with(false, true);
      } else if (abc[1] < 0.0) {
        abc = fit_with(true, false);
      }
      return beta(std::max(0.0, abc[0]), std::max(0.0, abc[1]), abc[2]);
    }
  }
  throw Error(ErrorCode::kInvalidArgument, "calibration fit: unknown method");
}

namespace detail {

namespace {

std::vector<double> number_array(const Json& obj, const char* key, const std::string& where) {
  const Json& v = medinfer::detail::require_member(obj, key, where);
  if (!v.is_array()) throw Error(ErrorCode::kInvalidArgument, medinfer::detail::field_path(where, key) + ": expected an array");
  std::vector<double> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number()) {
      throw Error(ErrorCode::kInvalidArgument,
                  medinfer::detail::field_path(where, key) + "[" + std::to_string(i) + "]: expected a number");
    }
    out.push_back(v[i].get<double>());
  }
  return out;
}

Calibrator one_from_json(const Json& obj, const std::string& where) {
  using medinfer::detail::get_number;
  try {
    const Method method = parse_method(medinfer::detail::get_string(obj, "method", where));
    switch (method) {  // anything else is a typo that must not silently fall back to a default
      case Method::kTemperature: medinfer::detail::reject_unknown_fields(obj, {"method", "temperature"}, where); break;
      case Method::kPlatt: medinfer::detail::reject_unknown_fields(obj, {"method", "a", "b"}, where); break;
      case Method::kIsotonic: medinfer::detail::reject_unknown_fields(obj, {"method", "x", "y"}, where); break;
      case Method::kHistogram: medinfer::detail::reject_unknown_fields(obj, {"method", "edges", "values"}, where); break;
      case Method::kBeta: medinfer::detail::reject_unknown_fields(obj, {"method", "a", "b", "c"}, where); break;
    }
    switch (method) {
      case Method::kTemperature: return Calibrator::temperature(get_number(obj, "temperature", where));
      case Method::kPlatt: return Calibrator::platt(get_number(obj, "a", where), get_number(obj, "b", where));
      case Method::kIsotonic: return Calibrator::isotonic(number_array(obj, "x", where), number_array(obj, "y", where));
      case Method::kHistogram:
        return Calibrator::histogram(number_array(obj, "edges", where), number_array(obj, "values", where));
      case Method::kBeta:
        return Calibrator::beta(get_number(obj, "a", where), get_number(obj, "b", where), get_number(obj, "c", where));
    }
  } catch (const Error& e) {
    // The factories name "calibration.<field>"; keep the file the caller named.
    if (std::string(e.what()).rfind("calibration.", 0) == 0) medinfer::detail::rethrow_with_location(e, where, "calibration");
    throw;
  }
  throw Error(ErrorCode::kInvalidArgument, where + ": unknown method");
}

}  // namespace

std::vector<Calibrator> calibration_from_json(const Json& value, const std::string& where, Task task,
                                              std::size_t label_count) {
  std::vector<Calibrator> out = calibration_from_json(value, where, task == Task::kMultiClass ? 1 : label_count);
  check_for_task(out, task, label_count, where);
  return out;
}

std::vector<Calibrator> calibration_from_json(const Json& value, const std::string& where, std::size_t label_count) {
  std::vector<Calibrator> out;
  if (value.is_array()) {
    if (value.size() != label_count) {
      throw Error(ErrorCode::kInvalidArgument, where + ": " + std::to_string(value.size()) + " calibrators for " +
                                                   std::to_string(label_count) + " label(s)");
    }
    for (std::size_t i = 0; i < value.size(); ++i) out.push_back(one_from_json(value[i], where + "[" + std::to_string(i) + "]"));
  } else {
    if (label_count != 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": one calibrator for " + std::to_string(label_count) + " labels: give an array, one per label");
    }
    out.push_back(one_from_json(value, where));
  }
  return out;
}

}  // namespace detail

std::vector<Calibrator> parse_calibration(const std::string& json_text, std::size_t label_count) {
  return medinfer::detail::guarded_parse("calibration", [&] {
    return detail::calibration_from_json(medinfer::detail::parse_json(json_text, "calibration"), "calibration",
                                       label_count);
  });
}

void check_for_task(const std::vector<Calibrator>& calibrators, Task task, std::size_t label_count,
                    const std::string& where) {
  if (task == Task::kMultiClass) {
    if (calibrators.size() != 1 || calibrators[0].method() != Method::kTemperature) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": a multi-class model is calibrated by one temperature over all logits (softmax(z / T)), not " +
                      (calibrators.size() == 1 ? "'" + std::string(to_string(calibrators[0].method())) + "'"
                                               : std::to_string(calibrators.size()) + " calibrators"));
    }
    return;
  }
  if (calibrators.size() != label_count) {
    throw Error(ErrorCode::kInvalidArgument, where + ": " + std::to_string(calibrators.size()) + " calibrator(s) for " +
                                                 std::to_string(label_count) + " label(s): a " + medinfer::to_string(task) +
                                                 " package has one per label");
  }
}

std::vector<Calibrator> parse_calibration(const std::string& json_text, Task task, std::size_t label_count) {
  return medinfer::detail::guarded_parse("calibration", [&] {
    return detail::calibration_from_json(medinfer::detail::parse_json(json_text, "calibration"), "calibration", task,
                                         label_count);
  });
}

std::string to_json(const std::vector<Calibrator>& calibrators, Task task) {
  check_for_task(calibrators, task, task == Task::kMultiLabel ? calibrators.size() : 1);
  if (task != Task::kMultiLabel) return calibrators[0].to_json();
  Json array = Json::array();
  for (const Calibrator& c : calibrators) array.push_back(Json::parse(c.to_json()));
  return array.dump();
}

std::vector<double> probabilities(const std::vector<Calibrator>& calibrators, Task task, const std::vector<float>& logits) {
  const std::size_t expected = task == Task::kMultiClass ? logits.size() : calibrators.size();
  if (logits.size() != expected || logits.empty() || (task == Task::kMultiClass && calibrators.size() != 1)) {
    throw Error(ErrorCode::kInvalidArgument, "calibration: " + std::to_string(logits.size()) + " logit(s) for " +
                                                 std::to_string(calibrators.size()) + " calibrator(s) of a " +
                                                 medinfer::to_string(task) + " package");
  }
  for (float z : logits) {
    if (!std::isfinite(z)) throw Error(ErrorCode::kInvalidArgument, "calibration: a logit is not finite");
  }
  std::vector<double> p(logits.size());
  if (task == Task::kMultiClass) {
    const double t = calibrators[0].parameters().at(0);
    double top = -INFINITY;
    for (float z : logits) top = std::max(top, static_cast<double>(z) / t);
    double sum = 0.0;
    for (std::size_t k = 0; k < logits.size(); ++k) sum += p[k] = std::exp(static_cast<double>(logits[k]) / t - top);
    for (double& v : p) v /= sum;
  } else {
    for (std::size_t k = 0; k < logits.size(); ++k) p[k] = calibrators[k].apply(logits[k]);
  }
  return p;
}

namespace {

// Refuses what neither the fit nor the NLL can use (ragged rows, classes out of range, NaN).
void check_multiclass_data(const std::vector<std::vector<double>>& logits, const std::vector<int>& classes) {
  if (logits.empty() || logits.size() != classes.size()) {
    throw Error(ErrorCode::kInvalidArgument, "fit_multiclass_temperature: " + std::to_string(logits.size()) +
                                                 " logit rows for " + std::to_string(classes.size()) + " classes");
  }
  const std::size_t k = logits[0].size();
  if (k < 2) throw Error(ErrorCode::kInvalidArgument, "fit_multiclass_temperature: fewer than 2 classes");
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (logits[i].size() != k) {
      throw Error(ErrorCode::kInvalidArgument, "fit_multiclass_temperature: row " + std::to_string(i) + " has " +
                                                   std::to_string(logits[i].size()) + " logits, expected " + std::to_string(k));
    }
    if (classes[i] < 0 || static_cast<std::size_t>(classes[i]) >= k) {
      throw Error(ErrorCode::kInvalidArgument, "fit_multiclass_temperature: class " + std::to_string(classes[i]) +
                                                   " of row " + std::to_string(i) + " is out of range");
    }
    for (double z : logits[i]) require_finite(z, "fit_multiclass_temperature: logit of row " + std::to_string(i));
  }
}

// The mean NLL of softmax(z / t) at the true class (data already checked).
double mean_nll(const std::vector<std::vector<double>>& logits, const std::vector<int>& classes, double t) {
  double total = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    double top = -INFINITY;
    for (double z : logits[i]) top = std::max(top, z / t);
    double sum = 0.0;
    for (double z : logits[i]) sum += std::exp(z / t - top);
    total += top + std::log(sum) - logits[i][static_cast<std::size_t>(classes[i])] / t;
  }
  return total / static_cast<double>(logits.size());
}

}  // namespace

double multiclass_nll(const std::vector<std::vector<double>>& logits, const std::vector<int>& classes, double temperature) {
  check_multiclass_data(logits, classes);
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    throw Error(ErrorCode::kInvalidArgument, "multiclass_nll: the temperature must be finite and > 0");
  }
  return mean_nll(logits, classes, temperature);
}

Calibrator fit_multiclass_temperature(const std::vector<std::vector<double>>& logits, const std::vector<int>& classes) {
  check_multiclass_data(logits, classes);
  auto nll = [&](double log_t) { return mean_nll(logits, classes, std::exp(log_t)); };
  // The NLL is unimodal in log T for these problems: golden-section search to 1e-9.
  const double g = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = -5.0, b = 5.0, c = b - g * (b - a), d = a + g * (b - a);
  double fc = nll(c), fd = nll(d);
  while (b - a > 1e-9) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = nll(d);
    }
  }
  return Calibrator::temperature(std::exp((a + b) / 2.0));
}

MethodSelection select_method(const std::vector<double>& scores, const std::vector<int>& labels, int bins) {
  MethodSelection out;
  bool found = false;
  double best = 0.0;
  for (Method m : {Method::kTemperature, Method::kPlatt, Method::kIsotonic, Method::kHistogram, Method::kBeta}) {
    // Only a method that can be fitted on the whole data can be chosen (temperature scaling cannot fit
    // scores anti-correlated with the labels, for one).
    try {
      (void)Calibrator::fit(m, scores, labels, bins);
    } catch (const Error&) {
      continue;
    }
    double sum = 0.0;
    int folds = 0;
    for (std::size_t k = 0; k < static_cast<std::size_t>(out.folds); ++k) {
      std::vector<double> fit_scores, held_scores;
      std::vector<int> fit_labels, held_labels;
      for (std::size_t i = 0; i < scores.size() && i < labels.size(); ++i) {
        const bool held = i % static_cast<std::size_t>(out.folds) == k;
        (held ? held_scores : fit_scores).push_back(scores[i]);
        (held ? held_labels : fit_labels).push_back(labels[i]);
      }
      try {
        const Calibrator c = Calibrator::fit(m, fit_scores, fit_labels, bins);
        std::vector<double> p;
        for (double v : held_scores) p.push_back(c.apply(v));
        sum += compute_metrics(p, held_labels).ece_positive;
        ++folds;
      } catch (const Error&) {
        // a fold without both classes (or an empty held-out part): skipped for this method
      }
    }
    if (folds == 0) continue;
    out.mean_ece[to_string(m)] = sum / folds;
    if (!found || sum / folds < best) out.method = m, best = sum / folds, found = true;
  }
  if (!found) throw Error(ErrorCode::kInvalidArgument, "select_method: too few cases for 5 folds");
  return out;
}

}  // namespace medinfer::calibration
