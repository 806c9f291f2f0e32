"""Calibrators and metrics against scikit-learn, scipy and independent numpy code on the same data."""
import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.calibration import _sigmoid_calibration
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

import medinfer


def data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < expit(z - 0.4)).astype(int)
    s = 2.5 * z + 0.7  # miscalibrated: overconfident and shifted
    return s, y


def test_temperature_matches_scipy():
    s, y = data()
    cal = medinfer.calibration.Calibrator.fit("temperature", s.tolist(), y.tolist())

    def nll(log_t):
        p = np.clip(expit(s / np.exp(log_t)), 1e-15, 1 - 1e-15)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    t = float(np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).x))
    ours = np.array(cal.apply_many(s.tolist()))
    assert np.max(np.abs(ours - expit(s / t))) <= 1e-4
    assert abs(cal.parameters[0] - t) <= 1e-3


def test_platt_matches_scikit_learn():
    s, y = data(seed=1)
    a, b = _sigmoid_calibration(s, y)
    cal = medinfer.calibration.Calibrator.fit("platt", s.tolist(), y.tolist())
    ours = np.array(cal.apply_many(s.tolist()))
    assert np.max(np.abs(ours - expit(-(a * s + b)))) <= 1e-4


def test_isotonic_matches_scikit_learn():
    s, y = data(seed=2)
    s = np.round(s, 2)  # with ties, as real scores have
    iso = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    cal = medinfer.calibration.Calibrator.fit("isotonic", s.tolist(), y.tolist())
    grid = np.concatenate([s, np.linspace(s.min() - 3, s.max() + 3, 2001)])
    assert np.max(np.abs(np.array(cal.apply_many(grid.tolist())) - iso.predict(grid))) <= 1e-6


def test_beta_matches_logistic_regression_on_its_features():
    s, y = data(seed=3)
    p = expit(s)
    features = np.column_stack([np.log(p), -np.log1p(-p)])
    lr = LogisticRegression(penalty=None, tol=1e-12, max_iter=10000).fit(features, y)
    a, b = lr.coef_[0]
    assert a > 0 and b > 0  # the unconstrained fit is the constrained one on this data
    cal = medinfer.calibration.Calibrator.fit("beta", s.tolist(), y.tolist())
    assert np.max(np.abs(np.array(cal.apply_many(s.tolist())) - lr.predict_proba(features)[:, 1])) <= 1e-4


def test_histogram_binning_is_the_bin_frequency():
    s, y = data(seed=4)
    cal = medinfer.calibration.Calibrator.fit("histogram", s.tolist(), y.tolist(), bins=10)
    p = expit(s)
    idx = np.minimum((p * 10).astype(int), 9)
    ours = np.array(cal.apply_many(s.tolist()))
    for b in np.unique(idx):
        assert np.allclose(ours[idx == b], y[idx == b].mean(), atol=1e-12)


def reference_metrics(p, y, bins=15):
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = mce = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            gap = abs(p[m].mean() - y[m].mean())
            ece += m.mean() * gap
            mce = max(mce, gap)
    conf = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y).astype(float)
    cidx = np.minimum((conf * bins).astype(int), bins - 1)
    ece_top = sum((cidx == b).mean() * abs(conf[cidx == b].mean() - correct[cidx == b].mean())
                  for b in range(bins) if (cidx == b).any())
    order = np.argsort(p, kind="stable")
    ece_mass = sum(len(c) / len(p) * abs(p[c].mean() - y[c].mean()) for c in np.array_split(order, bins) if len(c))
    return {"ece_positive": ece, "mce": mce, "ece_top_label": ece_top, "ece_equal_mass": ece_mass,
            "brier": brier_score_loss(y, p), "nll": log_loss(y, p), "auc": roc_auc_score(y, p)}


def test_metrics_agree_with_numpy_and_scikit_learn():
    s, y = data(seed=5)
    p = np.round(expit(s), 3)  # ties for the AUC
    ours = medinfer.calibration.compute_metrics(p.tolist(), y.tolist(), threshold=0.3)
    ref = reference_metrics(p, y)
    for k, v in ref.items():
        assert getattr(ours, k) == pytest.approx(v, abs=1e-9), k
    pred = p >= 0.3
    tp, fn = np.sum(pred & (y == 1)), np.sum(~pred & (y == 1))
    tn, fp = np.sum(~pred & (y == 0)), np.sum(pred & (y == 0))
    assert ours.sensitivity == pytest.approx(tp / (tp + fn))
    assert ours.specificity == pytest.approx(tn / (tn + fp))
    assert ours.ppv == pytest.approx(tp / (tp + fp))
    assert ours.npv == pytest.approx(tn / (tn + fn))


def test_bootstrap_intervals_bracket_the_estimate():
    s, y = data(n=600, seed=6)
    p = expit(s / 2.5).tolist()
    ci = medinfer.calibration.bootstrap_intervals(p, y.tolist(), resamples=300, seed=3)
    point = medinfer.calibration.compute_metrics(p, y.tolist())
    for k in ("auc", "brier", "ece_positive"):
        lo, hi = ci[k]
        assert lo <= getattr(point, k) <= hi, k
    assert ci == medinfer.calibration.bootstrap_intervals(p, y.tolist(), resamples=300, seed=3)


def test_invalid_calibration_json_is_refused():
    with pytest.raises(medinfer.InvalidArgumentError) as e:
        medinfer.calibration.Calibrator.from_json(json.dumps({"method": "isotonic", "x": [0, 1], "y": [0.9, 0.1]}))
    assert "non-decreasing" in str(e.value)
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.calibration.Calibrator.from_json('{"method": "temperature", "temperature": NaN}')


def test_the_documented_formulas_match_the_sdk():
    import calibration_reference

    s, y = data(n=800, seed=9)
    grid = np.linspace(-12, 12, 401)
    for method in ("temperature", "platt", "isotonic", "histogram", "beta"):
        cal = medinfer.calibration.Calibrator.fit(method, s.tolist(), y.tolist())
        ref = calibration_reference.apply(json.loads(cal.to_json()), grid)
        assert np.max(np.abs(np.array(cal.apply_many(grid.tolist())) - ref)) <= 1e-12, method
