"""The manifest's calibration applied in numpy: an independent reference for the tests and the Python peer."""
import numpy as np


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def apply(cal, score):
    """Calibrated probability (numpy array) for raw score(s), per docs/model-package.md."""
    s = np.asarray(score, dtype=np.float64)
    m = cal["method"]
    if m == "temperature":
        return _sigmoid(s / cal["temperature"])
    if m == "platt":
        return _sigmoid(-(cal["a"] * s + cal["b"]))
    if m == "isotonic":
        return np.interp(s, cal["x"], cal["y"])
    if m == "histogram":
        edges, values = np.asarray(cal["edges"]), np.asarray(cal["values"])
        idx = np.clip(np.searchsorted(edges[1:-1], _sigmoid(s), side="right"), 0, len(values) - 1)
        return values[idx]
    if m == "beta":
        p = _sigmoid(s)
        return _sigmoid(cal["a"] * np.log(p) - cal["b"] * np.log1p(-p) + cal["c"])
    raise ValueError(f"unknown calibration method {m}")
