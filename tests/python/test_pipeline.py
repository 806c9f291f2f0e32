"""The Python mirror of the Pipeline API, checked against an independent pydicom + numpy + torch path."""
import hashlib
import json
import shutil

import numpy as np
import pydicom
import pytest
import torch

import medinfer
import calibration_reference
import preprocess_reference as ref


def test_version_and_build_info():
    info = medinfer.build_info()
    assert isinstance(info, medinfer.BuildInfo)
    assert info.version == medinfer.version()
    assert info.libtorch_version.startswith("1.")
    assert info.dcmtk_version.startswith("3.6")
    assert isinstance(info.cuda_available, bool)
    assert info.to_dict()["compiler"] == info.compiler


def test_predict_returns_a_calibrated_result(demo_model, study):
    directory, rows = study
    p = medinfer.Pipeline.open(str(demo_model))
    r = p.predict(str(directory / rows[0]["file"]))
    assert 0.0 <= r.probability <= 1.0
    assert r.tier in {"low", "intermediate", "high", "indeterminate"}
    assert r.model.name == "demo-ct-lesion"
    assert r.model.version == "1.1.0"
    assert r.model.sha256 == hashlib.sha256((demo_model / "manifest.json").read_bytes()).hexdigest()
    assert len(r.input_sha256) == 64
    assert p.model.sha256 == r.model.sha256


def test_obvious_cases_land_in_the_expected_tier(demo_model, study):
    directory, rows = study
    p = medinfer.Pipeline.open(str(demo_model))
    for row in rows:
        if row["kind"] != "obvious":
            continue
        r = p.predict(str(directory / row["file"]))
        expected = "high" if row["label"] == "1" else "low"
        assert r.tier == expected, (row["file"], r.probability)
        assert r.escalate == (row["label"] == "1")


def test_matches_python_torch_on_the_same_files(demo_model, study):
    """medinfer (DCMTK + OpenCV + frozen LibTorch) vs pydicom + numpy + Python torch."""
    directory, rows = study
    manifest = json.loads((demo_model / "manifest.json").read_text())
    model = torch.jit.load(str(demo_model / "model.pt")).eval()
    p = medinfer.Pipeline.open(str(demo_model))
    for row in rows:
        path = directory / row["file"]
        ds = pydicom.dcmread(str(path))
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        x = ref.apply_spec(hu.astype(np.float32), manifest["preprocessing"])
        with torch.no_grad():
            logit = float(model(torch.from_numpy(x[None, None]))[0, 0])
        probability = float(calibration_reference.apply(manifest["calibration"], logit))
        r = p.predict(str(path))
        assert abs(r.raw_score - logit) <= 1e-4 * max(1.0, abs(logit)), row["file"]
        assert abs(r.probability - probability) <= 1e-5, row["file"]


def test_errors_are_typed_and_subclass_the_builtins(demo_model, tmp_path):
    p = medinfer.Pipeline.open(str(demo_model))
    with pytest.raises(medinfer.NotFoundError) as e:
        p.predict(str(tmp_path / "missing.dcm"))
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, medinfer.MedinferError)
    assert e.value.code == "kNotFound"
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 200)
    with pytest.raises(medinfer.InvalidDicomError) as e:
        p.predict(str(bad))
    assert isinstance(e.value, ValueError)
    assert "DICM" in str(e.value)


def test_a_modified_package_is_refused(demo_model, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    data = bytearray((pkg / "model.pt").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (pkg / "model.pt").write_bytes(bytes(data))
    with pytest.raises(medinfer.ModelIntegrityError) as e:
        medinfer.Pipeline.open(str(pkg))
    assert e.value.code == "kModelIntegrity"
    with pytest.raises(medinfer.NotFoundError):
        medinfer.Pipeline.open(str(tmp_path / "nothing-here"))


def test_audit_log_gets_one_record_per_prediction(demo_model, study, tmp_path):
    directory, rows = study
    log = tmp_path / "audit.jsonl"
    p = medinfer.Pipeline.open(str(demo_model), audit_log=str(log))
    for row in rows[:3]:
        p.predict(str(directory / row["file"]))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in records] == ["model_opened", "inference", "inference", "inference"]
    assert {r["outcome"] for r in records[1:]} <= {"ok", "indeterminate"}
    assert "SYNTHETIC" not in log.read_text() and str(directory) not in log.read_text()


def test_predict_releases_the_gil(demo_model, study):
    """Many Python threads share one Pipeline and get the sequential answers."""
    import concurrent.futures

    directory, rows = study
    p = medinfer.Pipeline.open(str(demo_model))
    files = [str(directory / row["file"]) for row in rows]
    expected = [p.predict(f).raw_score for f in files]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: p.predict(f).raw_score, files * 3))
    assert got == expected * 3


def test_chained_audit_log_from_python(demo_model, study, tmp_path):
    directory, rows = study
    key = tmp_path / "k"
    key.write_text("cd" * 32)
    log = tmp_path / "chain.jsonl"
    options = medinfer.PipelineOptions()
    options.user_id = "researcher-1"
    p = medinfer.Pipeline.open(demo_model, options, audit_log=log, audit_key_file=key)
    p.predict(directory / rows[0]["file"])
    # still open: the chain has no closing checkpoint yet; close() writes it, in this same process
    assert not medinfer.audit.verify_log(log, key) and medinfer.audit.verify_log(log, key, allow_unclosed=True)
    p.close()
    result = medinfer.audit.verify_log(log, medinfer.audit.Keyring.load_file(key))
    assert result.ok and result.closed and result.records == 3, result
    assert '"user_id":"researcher-1"' in log.read_text()
    text = log.read_text().replace('"outcome":"ok"', '"outcome":"OK"', 1)
    (tmp_path / "t.jsonl").write_text(text)
    tampered = medinfer.audit.verify_log(str(tmp_path / "t.jsonl"), str(key))
    assert not tampered.ok and tampered.first_bad_index == 0 and "modified" in tampered.problem


def test_predict_array_equals_predict_on_the_same_pixels(demo_model, study):
    import numpy as np
    import pydicom

    import medinfer

    directory, rows = study
    path = directory / rows[0]["file"]
    p = medinfer.Pipeline.open(str(demo_model))
    ds = pydicom.dcmread(str(path))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    spacing = tuple(float(v) for v in reversed(ds.PixelSpacing))
    a, b = p.predict(hu, spacing), p.predict(str(path))
    assert a.raw_score == pytest.approx(b.raw_score, rel=1e-6)
    with pytest.raises(medinfer.InvalidArgumentError):
        p.predict(np.zeros((2, 3, 4, 5), np.float32))
