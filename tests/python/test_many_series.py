"""predict_many, predict_series (2D and 3D) and predict_study from Python and the CLI (`--by`, `--jobs`).

The 3D package is a seeded TorchScript Conv3d model: the SDK's result on a synthetic series must equal
Python torch on the same preprocessed volume (medinfer.preprocess_volume of medinfer.dicom.read_series) within
1e-5.
"""
import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import make_sample_study
import medinfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDY_UID = "1.2.826.0.1.3680043.8.498.77"


class Tiny3d(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool3d(x, 1), 1))


STEPS_3D = [{"step": "window", "center": 40.0, "width": 400.0},
            {"step": "resize", "width": 32, "height": 32, "depth": 8, "interpolation": "linear"},
            {"step": "normalize", "mean": 0.25, "std": 0.25}]


def write_package(out, model, shape, steps, extra=None):
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model.eval()).save(str(out / "model.pt"))
    demo = json.loads(open(os.path.join(ROOT, "models", "demo", "manifest.json")).read())
    risk = {k: v for k, v in demo["risk"].items() if k not in ("operating_point", "conformal", "quality_gate")}
    manifest = {"format_version": 1, "name": out.name, "version": "0.1.0", "task": "binary", "labels": ["finding"],
                "intended_use": "tests only", "model": {"file": "model.pt", "format": "torchscript"},
                "input": {"shape": shape, "dtype": "float32"}, "preprocessing": steps,
                "output": {"kind": "logit", "count": 1},
                "calibration": {"method": "temperature", "temperature": 1.0}, "risk": risk,
                "files": {"model.pt": hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()}}
    manifest.update(extra or {})
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def write_series(folder, n=10, series_uid=STUDY_UID + ".1", lesion=6, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    files = []
    for i in range(n):
        hu = rng.normal(0.0, 20.0, (size, size)).astype(np.float32)
        if i == lesion:
            hu[20:40, 20:40] += 300.0
        path = str(folder / f"{(i * 7) % n:03d}.dcm")  # names not in slice order
        make_sample_study.write_ct(path, hu, i, STUDY_UID, series_uid, 77)
        files.append(path)
    return files


def test_3d_package_equals_python_torch(tmp_path):
    torch.manual_seed(5)
    model = Tiny3d()
    pkg = write_package(tmp_path / "tiny3d", model, [1, 1, 8, 32, 32], STEPS_3D)
    files = write_series(tmp_path / "series")
    p = medinfer.Pipeline.open(str(pkg))
    result = p.predict_series([str(tmp_path / "series")])
    assert result.aggregation == "volume"
    assert result.slices == 10
    vol, info = medinfer.dicom.read_series(files)
    x = medinfer.preprocess.apply_volume(json.dumps(STEPS_3D), vol)
    assert x.shape == (1, 1, 8, 32, 32)
    with torch.inference_mode():
        logit = float(model(torch.from_numpy(np.ascontiguousarray(x)))[0, 0])
    assert abs(result.raw_score - logit) < 1e-5
    assert abs(result.probability - 1.0 / (1.0 + np.exp(-logit))) < 1e-5
    with pytest.raises(medinfer.InvalidArgumentError, match="predict_series"):
        p.predict(files[0])


def test_predict_many_matches_predict_and_keeps_errors(study, demo_model, tmp_path):
    directory, rows = study
    files = [str(directory / r["file"]) for r in rows]
    (tmp_path / "bad.dcm").write_bytes(b"DICM? no")
    paths = files[:4] + [str(tmp_path / "bad.dcm")] + files[4:]
    p = medinfer.Pipeline.open(str(demo_model))
    done = []
    out = p.predict_many(paths, batch_size=3, workers=2, progress=lambda d, t: done.append((d, t)))
    assert len(out) == len(paths)
    assert isinstance(out[4], medinfer.InvalidDicomError) and out[4].code == "kInvalidDicom"
    for path, r in zip(paths[:4] + paths[5:], out[:4] + out[5:]):
        assert r.probability == p.predict(path).probability  # bit-identical
    assert done[-1] == (len(paths), len(paths))


def test_2d_series_evidence_names_the_lesion_slice(tmp_path, demo_model):
    files = write_series(tmp_path / "series", n=12, lesion=6)
    p = medinfer.Pipeline.open(str(demo_model))
    r = p.predict_series(files)
    # slice order: along the slice normal (ascending z for axial slices), as read_series orders them
    per_slice = [p.predict(f).probability for f in sorted(files, key=lambda f: medinfer.dicom.read_header(f).image_position[2])]
    assert r.aggregation == "max"
    assert r.slices == 12
    assert r.probability == pytest.approx(max(per_slice), abs=1e-12)
    assert r.evidence[0].probability == pytest.approx(max(per_slice), abs=1e-12)
    assert r.evidence[0].slice_index == int(np.argmax(per_slice))


def run_cli(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=300)


def test_cli_by_image_series_study(cli, demo_model, tmp_path):
    write_series(tmp_path / "study" / "a", n=6, series_uid=STUDY_UID + ".1")
    write_series(tmp_path / "study" / "b", n=4, series_uid=STUDY_UID + ".2")
    (tmp_path / "study" / "notes.txt").write_text("not DICOM")
    # --no-recursive: a folder is its own files, here only the text file, which is not DICOM: nothing to
    # read, and the error names the folder searched
    proc = run_cli(cli, "predict", "--model", str(demo_model), "--no-recursive", str(tmp_path / "study"))
    (line,) = [json.loads(l) for l in proc.stdout.splitlines()]
    assert line["input"] == str(tmp_path / "study") and line["error"]["code"] == "kNotFound"
    assert "notes.txt" in line["error"]["message"] and proc.returncode == 3
    # --by image (recursive by default; --recursive kept): the folder's tree, one line each, the text
    # file's line says it was skipped, which is not a failure
    for flags in ([], ["--recursive"]):
        proc = run_cli(cli, "predict", "--model", str(demo_model), *flags, "--jobs", "2", "--batch-size", "4",
                       str(tmp_path / "study"))
        lines = [json.loads(l) for l in proc.stdout.splitlines()]
        assert len(lines) == 11
        assert sum("error" in l for l in lines) == 0 and proc.returncode == 0, proc.stderr
        (skipped,) = [l for l in lines if "skipped" in l]
        assert skipped["input"].endswith("notes.txt") and "not DICOM" in skipped["skipped"]["reason"]
        assert ", 1 skipped, " in proc.stderr
        results = [l["input"] for l in lines if "skipped" not in l]
        assert results == sorted(results)
    # --by series: one line per series (and the unindexed file reported as skipped)
    proc = run_cli(cli, "predict", "--model", str(demo_model), "--recursive", "--by", "series", str(tmp_path / "study"))
    lines = [json.loads(l) for l in proc.stdout.splitlines()]
    series = [l for l in lines if "aggregation" in l]
    assert sorted(l["slices"] for l in series) == [4, 6]
    assert [l for l in lines if "skipped" in l][0]["input"].endswith("notes.txt")
    assert proc.returncode == 0, proc.stderr
    # --by study: one line for the study, both series in it
    proc = run_cli(cli, "predict", "--model", str(demo_model), "--recursive", "--by", "study", str(tmp_path / "study"))
    lines = [l for l in map(json.loads, proc.stdout.splitlines()) if "series" in l]
    assert len(lines) == 1 and len(lines[0]["series"]) == 2 and lines[0]["study_instance_uid"] == STUDY_UID
    assert run_cli(cli, "predict", "--model", str(demo_model), "--by", "slice", str(tmp_path)).returncode == 2


def test_cli_intra_op_threads_run_with_a_passive_openmp(cli, demo_model, study):
    directory, rows = study
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    one = subprocess.run([cli, "predict", "--model", str(demo_model), str(directory / rows[0]["file"])],
                         capture_output=True, text=True, env=env)
    two = subprocess.run([cli, "predict", "--model", str(demo_model), "--threads", "2", str(directory / rows[0]["file"])],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert json.loads(one.stdout)["probability"] == json.loads(two.stdout)["probability"]


def test_series_calibrator_fitted_with_calibrate_fit_from_series_labels(cli, demo_model, tmp_path):
    """The workflow docs/series.md documents: series raw scores (--by series, calibrate: aggregate with a
    neutral calibration) + series-level labels -> calibrate fit --scores -> series.calibration."""
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["series"] = {"aggregation": "max", "calibrate": "aggregate",
                          "calibration": {"method": "temperature", "temperature": 1.0}}
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    labels = {}
    for s in range(40):
        uid = f"{STUDY_UID}.9.{s}"
        labels[uid] = s % 2
        write_series(tmp_path / "series" / str(s), n=2, series_uid=uid, lesion=0 if s % 2 else -1)
    proc = run_cli(cli, "predict", "--model", str(pkg), "--recursive", "--by", "series", str(tmp_path / "series"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(l) for l in proc.stdout.splitlines()]
    assert len(rows) == 40
    (tmp_path / "series.csv").write_text("score,label\n" + "".join(
        f"{r['raw_score']!r},{labels[r['series_instance_uid']]}\n" for r in rows))
    fit = run_cli(cli, "calibrate", "fit", "--scores", str(tmp_path / "series.csv"), "--method", "platt",
                  "--out", str(tmp_path / "series-cal.json"))
    assert fit.returncode == 0, fit.stderr
    cal = json.loads((tmp_path / "series-cal.json").read_text())
    manifest["series"]["calibration"] = cal
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    again = [json.loads(l) for l in run_cli(cli, "predict", "--model", str(pkg), "--recursive", "--by", "series",
                                            str(tmp_path / "series")).stdout.splitlines()]
    calibrator = medinfer.calibration.Calibrator.from_json(json.dumps(cal))
    for r in again:
        assert r["probability"] == pytest.approx(calibrator.apply(r["raw_score"]), abs=1e-12)
