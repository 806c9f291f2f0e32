"""The Python conveniences over the mirror: os.PathLike paths, dict specs, Result.to_dict equal to the
library's JSON, pickling, `with` / close() (the audit chain closes in the same process), predict_many's
progress, arrays that share the library's memory, FileNotFoundError's filename, and the GIL released
while predicting."""
import gc
import json
import os
import pathlib
import pickle
import threading
import time

import numpy as np
import pytest

import medinfer


@pytest.fixture(scope="module")
def files(study):
    directory, rows = study
    return [directory / r["file"] for r in rows]


def test_paths_may_be_pathlike_everywhere(demo_model, files):
    with medinfer.Pipeline.open(pathlib.Path(demo_model)) as p:
        a = p.predict(files[0])
        b = p.predict(str(files[0]))
        assert a.to_json().split('"latency_ms"')[0] == b.to_json().split('"latency_ms"')[0]
        assert p.prepare(files[0]).shape == (1, 1, 64, 64)
    image, header = medinfer.dicom.read_instance(files[0])
    assert header.sop_instance_uid == a.sop_instance_uid
    assert medinfer.dicom.read_header(files[0]).rows == image.shape[0]


def test_to_dict_is_the_library_json_and_results_pickle(demo_model, files):
    with medinfer.Pipeline.open(demo_model) as p:
        r = p.predict(files[0])
    assert r.to_dict() == json.loads(r.to_json())
    again = pickle.loads(pickle.dumps(r))
    assert isinstance(again, medinfer.Result) and again.to_json() == r.to_json()
    assert again.preprocessing_sha256 == r.preprocessing_sha256 and again.batch_size == r.batch_size
    assert [f.probability for f in again.findings] == [f.probability for f in r.findings]
    assert pickle.loads(pickle.dumps(r.findings[0])).tier == r.findings[0].tier


def test_close_releases_the_pipeline_and_closes_its_chain(demo_model, files, tmp_path):
    key = tmp_path / "k"
    key.write_text("ab" * 32)
    log = tmp_path / "chain.jsonl"
    p = medinfer.Pipeline.open(demo_model, audit_log=log, audit_key_file=key)
    p.predict(files[0])
    assert not p.closed and not medinfer.audit.verify_log(log, key).closed
    p.close()
    p.close()  # idempotent
    assert p.closed
    result = medinfer.audit.verify_log(log, key)
    assert result.ok and result.closed, result
    with pytest.raises(medinfer.InvalidArgumentError, match="closed"):
        p.predict(files[0])


def test_specs_may_be_python_data_or_json_text():
    pixels = np.linspace(-1000, 1000, 64 * 48, dtype=np.float32).reshape(48, 64)
    steps = [{"step": "window", "center": 40, "width": 400}, {"step": "resize", "width": 32, "height": 32}]
    a = medinfer.preprocess.apply(steps, pixels)
    b = medinfer.preprocess.apply(json.dumps(steps), pixels)
    assert a.shape == (1, 1, 32, 32) and np.array_equal(a, b)
    policy = medinfer.risk.parse_policy({"tiers": [{"name": "low", "min_probability": 0},
                                                   {"name": "high", "min_probability": 0.5}],
                                         "escalation_threshold": 0.8, "min_confidence": 0.5})
    f = medinfer.risk.assess(policy, 0.9)
    assert f.tier == "high" and f.escalate and f.rule == "tier_cutpoints"
    with pytest.raises(medinfer.InvalidArgumentError, match="tiers"):
        medinfer.risk.parse_policy({"tiers": [], "escalation_threshold": 0.8, "min_confidence": 0.5})


def test_arrays_share_the_library_memory_and_keep_it_alive(demo_model, files):
    image, _ = medinfer.dicom.read_instance(files[0])
    with medinfer.Pipeline.open(demo_model) as p:
        x = p.prepare(files[0])
        reference = p.prepare(files[0]).copy()
    for array in (image, x):
        assert not array.flags.owndata and array.base is not None  # a view of the library's buffer, not a copy
        assert array.flags.c_contiguous and array.flags.writeable
    # the view's data pointer is the owner's: a second view of the same base points at the same bytes
    again = np.asarray(x)
    assert again.__array_interface__["data"][0] == x.__array_interface__["data"][0]
    gc.collect()  # the pipeline is closed and gone: the array still holds its tensor
    assert np.array_equal(x, reference)


def test_predict_many_reports_progress_and_per_file_errors(demo_model, files, tmp_path, capsys):
    seen = []
    with medinfer.Pipeline.open(demo_model) as p:
        out = p.predict_many(list(files[:3]) + [tmp_path / "missing.dcm"], progress=lambda d, t: seen.append((d, t)))
        assert [type(o).__name__ for o in out[:3]] == ["Result"] * 3
        missing = out[3]
        assert isinstance(missing, medinfer.NotFoundError) and isinstance(missing, FileNotFoundError)
        assert missing.filename == str(tmp_path / "missing.dcm") and missing.errno == 2
        assert seen[-1] == (4, 4) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        pytest.importorskip("tqdm")
        p.predict_many(files[:4], progress=True)
    assert "4/4" in capsys.readouterr().err  # the tqdm bar


def test_not_found_errors_carry_the_filename(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        medinfer.dicom.read_header(tmp_path / "nope.dcm")
    assert info.value.filename == str(tmp_path / "nope.dcm") and info.value.code == "kNotFound"


def test_two_threads_predicting_overlap(demo_model, files):
    if os.getloadavg()[0] > 1.0:
        pytest.skip(f"the machine is busy (load {os.getloadavg()[0]:.2f}): an overlap timing would mean nothing")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core")
    with medinfer.Pipeline.open(demo_model) as p:
        for f in files:
            p.predict(f)  # warm

        def work():
            for _ in range(60):
                for f in files:
                    p.predict(f)

        t0 = time.perf_counter()
        work()
        one = time.perf_counter() - t0
        threads = [threading.Thread(target=work) for _ in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        both = time.perf_counter() - t0
    assert both < 1.6 * one, f"two threads took {both:.3f} s against {one:.3f} s for one: the GIL is held"


def test_signing_keys_can_be_pinned_from_python(cli, demo_model, tmp_path, files):
    import shutil
    import subprocess
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    for args in (["package", "keygen", "--out", tmp_path / "a"], ["package", "keygen", "--out", tmp_path / "b"],
                 ["package", "sign", pkg, "--key", tmp_path / "a"]):
        assert subprocess.run([cli, *map(str, args)], capture_output=True).returncode == 0
    options = medinfer.PipelineOptions()
    options.package.trusted_public_keys = [(tmp_path / "a.pub").read_text()]
    with medinfer.Pipeline.open(pkg, options) as p:
        assert p.predict(files[0]).tier
    options.package.trusted_public_keys = [(tmp_path / "b.pub").read_text()]  # another vendor's key
    with pytest.raises(medinfer.ModelIntegrityError):
        medinfer.Pipeline.open(pkg, options)
    (pkg / "manifest.sig").unlink()  # stripping the signature does not defeat the pin
    options.package.trusted_public_keys = [(tmp_path / "a.pub").read_text()]
    with pytest.raises(medinfer.ModelIntegrityError, match="not signed"):
        medinfer.Pipeline.open(pkg, options)


def test_header_text_that_is_not_utf8_never_raises_unicode_errors(demo_model, files, tmp_path):
    import pydicom
    ds = pydicom.dcmread(files[0])
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.add_new(0x0008103E, "LO", b"Caf\xe9 \xff\xfe")  # Latin-1 and garbage under the default repertoire
    bad = tmp_path / "latin1.dcm"
    ds.save_as(bad)
    header = medinfer.dicom.read_header(bad)
    assert header.series_description.startswith("Caf") and "\ufffd" in header.series_description
    assert any(w.tag == "(0008,103E)" for w in header.warnings)
    with medinfer.Pipeline.open(demo_model) as p:
        assert p.predict(bad).tier
        assert p.predict_series([bad]).slices == 1


def test_the_version_is_the_library_version():
    assert medinfer.__version__ == medinfer.version() == medinfer.build_info().version


def test_series_and_study_results_are_classes_that_pickle(demo_model, study):
    directory, _ = study
    with medinfer.Pipeline.open(demo_model) as p:
        s = p.predict_series([directory])
        st = p.predict_study([directory])
    assert isinstance(s, medinfer.SeriesResult) and s.slices == 10 and s.evidence and s.to_dict() == json.loads(s.to_json())
    again = pickle.loads(pickle.dumps(s))
    assert isinstance(again, medinfer.SeriesResult) and again.to_json() == s.to_json()
    assert isinstance(st, medinfer.StudyResult) and st.series[0].series_instance_uid == s.series_instance_uid
    assert st.to_dict()["study_instance_uid"] == st.study_instance_uid and "StudyResult(" in repr(st)


def test_the_library_enums_are_python_str_enums(demo_model, files, tmp_path):
    import enum
    for cls in (medinfer.Rule, medinfer.Arm, medinfer.Task, medinfer.ErrorCode, medinfer.calibration.Method,
                medinfer.dicom.HeaderWarningKind, medinfer.dicom.SeriesWarningKind):
        assert issubclass(cls, enum.StrEnum) and len(cls) >= 2, cls
    with medinfer.Pipeline.open(demo_model) as p:
        r = p.predict(files[0])
        assert p.task is medinfer.Task.BINARY
        missing = p.predict_many([tmp_path / "nope.dcm"])[0]
    assert r.rule is medinfer.Rule.TIER_CUTPOINTS and r.rule == "tier_cutpoints"  # equal to the JSON's name
    assert r.arm is medinfer.Arm.NONE and r.findings[0].rule is r.rule
    assert json.loads(r.to_json())["rule"] == r.rule and json.dumps(r.rule) == '"tier_cutpoints"'
    assert missing.code is medinfer.ErrorCode.NOT_FOUND and f"{missing.code}" == "kNotFound"
    assert medinfer.calibration.Calibrator.fit(medinfer.calibration.Method.PLATT, [-1.0, 2.0], [0, 1]).method == "platt"
    with pytest.raises(medinfer.InvalidArgumentError, match="platt"):
        medinfer.calibration.Calibrator.fit("plat", [-1.0, 2.0], [0, 1])


def test_packages_are_verified_signed_and_recalibrated_from_python(demo_model, files, tmp_path):
    import shutil
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    package = medinfer.package.verify_package(pkg)
    assert package.task is medinfer.Task.BINARY and package.labels == ["lesion"] and package.signer_key_id == ""
    assert package.manifest["name"] == package.identity.name and package.input_shape == [1, 1, 64, 64]
    key = medinfer.package.generate_signing_key()
    key_id = medinfer.package.sign(pkg, key.private_pem)
    assert key_id == medinfer.package.public_key_id(key.public_pem) == medinfer.package.key_id(key.private_pem)
    options = medinfer.PackageOptions()
    options.trusted_public_keys = [key.public_pem]
    assert medinfer.package.verify_package(pkg, options).signer_key_id == key_id
    with pytest.raises(medinfer.InvalidArgumentError, match="private key"):
        medinfer.package.public_key_id(key.private_pem)
    with medinfer.Pipeline.open(pkg) as p:
        scores = [r.raw_score for r in p.predict_many(files)]
        assert p.package.identity == p.model or p.package.identity.sha256 == p.model.sha256
    labels = [1, 0] * (len(scores) // 2) + [1] * (len(scores) % 2)
    calibrator = medinfer.calibration.Calibrator.fit("platt", scores, labels)
    identity = medinfer.package.write_recalibrated(pkg, [calibrator], {"note": "test"}, tmp_path / "next")
    assert identity.version == medinfer.package.next_minor_version(package.identity.version)
    with medinfer.Pipeline.open(tmp_path / "next") as p:
        assert p.predict(files[0]).probability == pytest.approx(calibrator.apply(scores[0]), abs=1e-12)
