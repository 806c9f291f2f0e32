"""Multi-label and multi-class heads against Python torch + reference calibration, and hot swap / A/B
routing from Python. The packages come from scripts/make_head_models.py (seeded, written per session)."""
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import torch

import medinfer
import calibration_reference
import preprocess_reference as ref


def options(**fields):
    """PipelineOptions with the given engine / batching fields set."""
    o = medinfer.PipelineOptions()
    for name, value in fields.items():
        setattr(o.batching if name.startswith("max_") else o.engine, name, value)
    return o
from conftest import ROOT


def reference_logits(package, path):
    """pydicom + numpy preprocessing + Python torch: the logits medinfer must reproduce."""
    manifest = json.loads((package / "manifest.json").read_text())
    model = torch.jit.load(str(package / "model.pt")).eval()
    ds = pydicom.dcmread(str(path))
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    x = ref.apply_spec(hu.astype(np.float32), manifest["preprocessing"])
    with torch.no_grad():
        return manifest, model(torch.from_numpy(x[None, None]))[0].double().numpy()


def test_multi_label_head_matches_torch_and_per_label_calibration(heads, study, tmp_path):
    package = heads / "multi-label"
    directory, rows = study
    log = tmp_path / "audit.jsonl"
    p = medinfer.Pipeline.open(str(package), audit_log=str(log))
    assert p.task == "multi-label"
    assert p.labels == ["lesion", "calcification", "artifact"]
    for row in rows[:12]:
        path = directory / row["file"]
        manifest, logits = reference_logits(package, path)
        r = p.predict(str(path))
        assert [f.label for f in r.findings] == manifest["labels"]
        for k, f in enumerate(r.findings):
            assert abs(f.raw_score - logits[k]) <= 1e-5 * max(1.0, abs(logits[k])), (row["file"], k)
            expected = float(calibration_reference.apply(manifest["calibration"][k], logits[k]))
            assert abs(f.probability - expected) <= 1e-5, (row["file"], k)
        primary = max(r.findings, key=lambda f: (f.escalate, f.probability))
        assert r.label == primary.label and r.probability == primary.probability
    del p  # closes the audit log
    records = [json.loads(line) for line in log.read_text().splitlines()]
    inference = [rec for rec in records if rec["event"] == "inference"]
    assert len(inference) == len(rows[:12])
    assert [f["label"] for f in inference[-1]["findings"]] == ["lesion", "calcification", "artifact"]
    assert inference[-1]["label"] == r.label


def test_multi_class_head_is_softmax_of_logits_over_temperature(heads, study):
    package = heads / "multi-class"
    directory, rows = study
    p = medinfer.Pipeline.open(str(package))
    assert p.task == "multi-class"
    for row in rows[:12]:
        path = directory / row["file"]
        manifest, logits = reference_logits(package, path)
        z = logits / manifest["calibration"]["temperature"]
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        r = p.predict(str(path))
        got = np.array([f.probability for f in r.findings])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert abs(got.sum() - 1.0) < 1e-9


def test_cli_prints_every_finding(heads, study, cli):
    directory, rows = study
    out = subprocess.run([cli, "predict", "--model", str(heads / "multi-label"), str(directory / rows[0]["file"])],
                         capture_output=True, text=True, check=True)
    line = json.loads(out.stdout)
    assert [f["label"] for f in line["findings"]] == ["lesion", "calcification", "artifact"]
    assert line["label"] in {"lesion", "calcification", "artifact"}
    for f in line["findings"]:
        assert set(f) >= {"label", "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate", "rule"}


def _version(demo_model, tmp_path, version, temperature):
    pkg = tmp_path / version
    shutil.copytree(demo_model, pkg)
    m = json.loads((pkg / "manifest.json").read_text())
    m["version"] = version
    m["calibration"] = {"method": "temperature", "temperature": temperature}
    (pkg / "manifest.json").write_text(json.dumps(m))
    return pkg


def test_routing_bucket_is_the_documented_hash():
    for key in ["", "1.2.3", "study-42", "1.2.840.113619.2.55.3.604688119"]:
        digest = hashlib.sha256(("medinfer-ab-v1:" + key).encode()).digest()
        expected = (int.from_bytes(digest[:8], "big") >> 11) * 2.0 ** -53
        assert medinfer.routing_bucket(key) == expected


def test_swap_and_ab_test_from_python(demo_model, study, tmp_path):
    directory, rows = study
    v2 = _version(demo_model, tmp_path, "2.0.0", 3.0)
    p = medinfer.Pipeline.open(str(demo_model))
    path = str(directory / rows[0]["file"])
    before = p.predict(path)
    assert p.swap_model(str(v2)).version == "2.0.0"
    after = p.predict(path)
    assert after.model.version == "2.0.0"
    assert after.raw_score == pytest.approx(before.raw_score, abs=1e-6)  # same model.pt
    assert after.probability == pytest.approx(1 / (1 + np.exp(-after.raw_score / 3.0)), abs=1e-9)
    with pytest.raises(medinfer.NotFoundError):
        p.swap_model(str(tmp_path / "missing"))
    assert p.model.version == "2.0.0"

    p.start_ab_test(str(demo_model), 0.5)
    d = p.deployment()
    assert (d.primary.version, d.candidate.version, d.candidate_fraction) == ("2.0.0", "1.1.0", 0.5)
    for row in rows:
        r = p.predict(str(directory / row["file"]))
        study_uid = str(pydicom.dcmread(str(directory / row["file"]), stop_before_pixels=True).StudyInstanceUID)
        expected = "candidate" if medinfer.routing_bucket(study_uid) < 0.5 else "primary"
        assert r.arm == expected
        assert r.model.version == ("1.1.0" if expected == "candidate" else "2.0.0")
    assert p.promote_candidate().version == "1.1.0"
    assert p.predict(path).arm == ""


def test_engine_options_from_python(demo_model, study):
    directory, rows = study
    path = str(directory / rows[0]["file"])
    reference = medinfer.Pipeline.open(str(demo_model)).predict(path)
    batched = medinfer.Pipeline.open(str(demo_model), options(max_batch_size=4, max_delay_us=100)).predict(path)
    assert batched.raw_score == pytest.approx(reference.raw_score, abs=1e-5)
    if not medinfer.build_info().cuda_available:
        with pytest.raises(medinfer.UnsupportedError):
            medinfer.Pipeline.open(str(demo_model), options(device="cuda:0"))
    with pytest.raises(medinfer.UnsupportedError, match="half_precision"):
        medinfer.Pipeline.open(str(demo_model), options(half_precision=True))
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.Pipeline.open(str(demo_model), options(device="gpu"))
    assert "torchscript" in medinfer.backend_formats()


def test_package_verify_checks_heads_as_the_pipeline_does(heads, cli, tmp_path):
    for name, task in [("multi-label", "multi-label"), ("multi-class", "multi-class")]:
        out = json.loads(subprocess.run([cli, "package", "verify", str(heads / name)], capture_output=True,
                                        text=True, check=True).stdout)
        assert out["ok"] is True and out["task"] == task and len(out["labels"]) == 3
        assert out["model_format"] == "torchscript" and out["backend_available"] is True
    bad = tmp_path / "bad"
    shutil.copytree(heads / "multi-class", bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["calibration"] = {"method": "platt", "a": -1.0, "b": 0.0}
    (bad / "manifest.json").write_text(json.dumps(m))
    r = subprocess.run([cli, "package", "verify", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "one temperature" in json.loads(r.stdout)["error"]["message"]
    with pytest.raises(medinfer.InvalidArgumentError, match="one temperature"):
        medinfer.Pipeline.open(str(bad))


@pytest.mark.parametrize("package", ["demo", "multi-label", "multi-class"])
def test_logits_equal_python_torch_on_the_same_input_tensor(package, heads, demo_model, study):
    """The engine against Python torch on the very tensor medinfer's preprocessing produced: ≤ 1e-5 absolute."""
    directory, rows = study
    pkg = demo_model if package == "demo" else heads / package
    manifest = json.loads((pkg / "manifest.json").read_text())
    model = torch.jit.load(str(pkg / "model.pt")).eval()
    p = medinfer.Pipeline.open(str(pkg))
    for row in rows:
        ds = pydicom.dcmread(str(directory / row["file"]))
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        x = medinfer.preprocess.apply(json.dumps(manifest["preprocessing"]), hu)
        with torch.no_grad():
            expected = model(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy()
        got = np.array([f.raw_score for f in p.predict(hu).findings])
        assert np.abs(got - expected).max() <= 1e-5, (row["file"], got, expected)
