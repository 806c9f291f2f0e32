"""medinfer calibrate fit / apply: the documented commands, files and fields, against scikit-learn."""
import json
import shutil
import subprocess

import numpy as np
from scipy.special import expit
from sklearn.calibration import _sigmoid_calibration
from sklearn.metrics import brier_score_loss, roc_auc_score


def run(cli, *args):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300)


def write_scores(path, s, y=None):
    rows = [f"{a!r}" + ("" if y is None else f",{b}") for a, b in zip(s, y if y is not None else s)]
    path.write_text(("score\n" if y is None else "score,label\n") + "\n".join(rows) + "\n")


def scores(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    return 2.5 * z + 0.5, (rng.random(n) < expit(z)).astype(int)


def test_fit_writes_calibration_report_and_plot(cli, tmp_path):
    s, y = scores()
    write_scores(tmp_path / "s.csv", s, y)
    r = run(cli, "calibrate", "fit", "--scores", tmp_path / "s.csv", "--method", "platt", "--out", tmp_path / "c.json",
            "--report", tmp_path / "r.json", "--plot", tmp_path / "p.png", "--bootstrap", 50)
    assert r.returncode == 0, r.stderr
    cal = json.loads((tmp_path / "c.json").read_text())
    a, b = _sigmoid_calibration(s, y)
    assert cal["method"] == "platt" and abs(cal["a"] - a) < 1e-3 and abs(cal["b"] - b) < 1e-3
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("method", "calibration", "metrics_before", "metrics_after", "operating_point", "conformal",
                "intervals_95_before", "intervals_95_after"):
        assert key in report, key
    p = expit(-(a * s + b))
    assert abs(report["metrics_after"]["brier"] - brier_score_loss(y, p)) < 1e-5
    assert abs(report["metrics_before"]["auc"] - roc_auc_score(y, s)) < 1e-9
    assert report["metrics_after"]["ece_positive"] < report["metrics_before"]["ece_positive"]
    op = report["operating_point"]
    pc = expit(-(cal["a"] * s + cal["b"]))
    assert np.mean(pc[y == 1] >= op["threshold_empirical"]) >= 0.9
    assert op["threshold_guaranteed"] <= op["threshold_empirical"]
    assert 0.0 < report["conformal"]["qhat"] <= 1.0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_apply_prints_one_probability_per_row_in_order(cli, tmp_path):
    s, y = scores(seed=1)
    write_scores(tmp_path / "fit.csv", s, y)
    assert run(cli, "calibrate", "fit", "--scores", tmp_path / "fit.csv", "--method", "isotonic",
               "--out", tmp_path / "c.json").returncode == 0
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    new = np.linspace(-10, 10, 57)
    write_scores(tmp_path / "new.csv", new)
    r = run(cli, "calibrate", "apply", "--calibration", tmp_path / "c.json", "--scores", tmp_path / "new.csv")
    assert r.returncode == 0, r.stderr
    got = np.array([float(x) for x in r.stdout.split()])
    assert len(got) == len(new) and np.max(np.abs(got - iso.predict(new))) <= 1e-6
    r = run(cli, "calibrate", "apply", "--calibration", tmp_path / "c.json", "--scores", tmp_path / "fit.csv",
            "--report", tmp_path / "held.json")
    assert r.returncode == 0 and "metrics_after" in json.loads((tmp_path / "held.json").read_text())


def test_bad_inputs_name_the_file_and_line(cli, tmp_path):
    (tmp_path / "hdr.csv").write_text("logit,y\n1,0\n")
    (tmp_path / "lbl.csv").write_text("score,label\n1.5,0\n2.0,yes\n")
    (tmp_path / "nan.csv").write_text("score,label\n1.5,0\nnan,1\n")
    (tmp_path / "one.csv").write_text("score,label\n1.5,1\n2.0,1\n")
    (tmp_path / "bad.json").write_text('{"method": "isotonic", "x": [0, 1], "y": [0.9, 0.1]}')
    cases = [
        (["fit", "--scores", tmp_path / "hdr.csv", "--method", "platt", "--out", tmp_path / "o"], "hdr.csv line 1"),
        (["fit", "--scores", tmp_path / "lbl.csv", "--method", "platt", "--out", tmp_path / "o"], "lbl.csv line 3"),
        (["fit", "--scores", tmp_path / "nan.csv", "--method", "platt", "--out", tmp_path / "o"], "nan.csv line 3"),
        (["fit", "--scores", tmp_path / "one.csv", "--method", "platt", "--out", tmp_path / "o"], "both classes"),
        (["apply", "--calibration", tmp_path / "bad.json", "--scores", tmp_path / "lbl.csv"], "non-decreasing"),
    ]
    for args, expected in cases:
        r = run(cli, "calibrate", *args)
        assert r.returncode == 1, (args, r.stderr)  # bad data, not bad usage
        assert expected in r.stderr, (expected, r.stderr)
        assert "kInvalidArgument" in r.stderr
    r = run(cli, "calibrate", "fit", "--scores", tmp_path / "lbl.csv", "--method", "magic", "--out", tmp_path / "o")
    assert r.returncode == 2 and "magic" in r.stderr  # an option value the parser refuses: usage
    r = run(cli, "calibrate", "apply", "--calibration", tmp_path / "none.json", "--scores", tmp_path / "lbl.csv")
    assert r.returncode == 1 and "kNotFound" in r.stderr
    assert not (tmp_path / "o").exists()


def test_fit_over_a_package_writes_the_next_version(cli, demo_model, tmp_path):
    study = tmp_path / "study"
    subprocess.run(["/usr/bin/python3", str(demo_model.parents[1] / "scripts" / "make_sample_study.py"),
                    "--out", str(study), "--count", "40", "--seed", "5", "--no-obvious"], check=True,
                   capture_output=True)
    out = tmp_path / "demo-next"
    r = run(cli, "calibrate", "fit", "--model", demo_model, "--labels", study / "labels.csv", "--method",
            "temperature", "--out", out)
    assert r.returncode == 0, r.stderr
    old, new = (json.loads((d / "manifest.json").read_text()) for d in (demo_model, out))
    major, minor, _ = map(int, old["version"].split("."))
    assert new["version"] == f"{major}.{minor + 1}.0"
    assert new["calibration"]["method"] == "temperature"
    assert "calibration_report.json" in new["files"]
    assert json.loads((out / "calibration_report.json").read_text())["data"]["count"] == 40
    files = [study / line.split(",")[0] for line in (study / "labels.csv").read_text().splitlines()[1:4]]
    a = [json.loads(x) for x in run(cli, "predict", "--model", demo_model, *files).stdout.splitlines()]
    b = [json.loads(x) for x in run(cli, "predict", "--model", out, *files).stdout.splitlines()]
    assert [x["raw_score"] for x in a] == [x["raw_score"] for x in b]  # same model, new calibration
    assert b[0]["model"]["version"] == new["version"]
    r = run(cli, "calibrate", "fit", "--model", demo_model, "--labels", study / "labels.csv", "--method",
            "temperature", "--out", out)
    assert r.returncode == 1 and "not empty" in r.stderr  # never overwrites a package
    shutil.rmtree(out)


def test_fit_over_a_package_with_the_documented_defaults(cli, demo_model, tmp_path):
    """`medinfer calibrate fit --model DIR --labels labels.csv`, exactly as written: method chosen by
    cross-validation, the new version written beside DIR."""
    study = tmp_path / "study"
    subprocess.run(["/usr/bin/python3", str(demo_model.parents[1] / "scripts" / "make_sample_study.py"),
                    "--out", str(study), "--count", "60", "--seed", "6", "--no-obvious"], check=True,
                   capture_output=True)
    model = tmp_path / "demo"
    shutil.copytree(demo_model, model)
    r = run(cli, "calibrate", "fit", "--model", model, "--labels", study / "labels.csv")
    assert r.returncode == 0, r.stderr
    version = json.loads((model / "manifest.json").read_text())["version"]
    major, minor, _ = map(int, version.split("."))
    out = tmp_path / f"demo-{major}.{minor + 1}.0"
    report = json.loads((out / "calibration_report.json").read_text())
    assert set(report["method_selection"]["ece"]) <= {"temperature", "platt", "isotonic", "histogram", "beta"}
    chosen = min(report["method_selection"]["ece"], key=report["method_selection"]["ece"].get)
    assert report["method"] == chosen
    assert json.loads((out / "manifest.json").read_text())["calibration"]["method"] == chosen


def test_fit_warns_on_a_small_fit_set_and_records_the_counts(cli, tmp_path):
    s, y = scores(n=60, seed=3)
    write_scores(tmp_path / "small.csv", s, y)
    r = run(cli, "calibrate", "fit", "--scores", tmp_path / "small.csv", "--method", "platt", "--out",
            tmp_path / "c.json", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "warning: calibrate fit: only 60 cases" in r.stderr
    data = json.loads((tmp_path / "r.json").read_text())["data"]
    assert data["small"] is True and sum(data["per_class"]) == 60 and data["per_class"][1] == int(y.sum())
    assert "unreliable" in data["warning"]
    s, y = scores()
    write_scores(tmp_path / "big.csv", s, y)
    r = run(cli, "calibrate", "fit", "--scores", tmp_path / "big.csv", "--method", "platt", "--out",
            tmp_path / "c2.json", "--report", tmp_path / "r2.json")
    assert r.returncode == 0 and "warning" not in r.stderr
    data = json.loads((tmp_path / "r2.json").read_text())["data"]
    assert data["small"] is False and data["minimum_recommended"] == {"cases": 100, "per_class": 20}
