"""The medinfer CLI: every command, flag and output field the docs name, and its error records."""
import json
import re
import os
import shutil
import subprocess


def run(cli, *args):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_help_and_version(cli):
    r = run(cli, "--help")
    assert r.returncode == 0 and "predict --model DIR" in r.stdout
    r = run(cli, "version")
    assert r.returncode == 0 and r.stdout.startswith("medinfer ")
    r = run(cli, "version", "--json")
    info = json.loads(r.stdout)
    assert set(info) >= {"version", "libtorch", "opencv", "dcmtk", "cuda_available"}


def test_predict_prints_one_json_line_per_input_with_the_documented_fields(cli, demo_model, study, tmp_path):
    directory, rows = study
    files = [directory / row["file"] for row in rows]
    audit = tmp_path / "audit.jsonl"
    r = run(cli, "predict", "--model", demo_model, "--audit-log", audit, *files)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == len(files)
    for line, f in zip(lines, files):
        assert line["input"] == str(f)
        for key in ("probability", "tier", "escalate", "raw_score", "confidence", "indeterminate", "input_sha256",
                    "latency_ms"):
            assert key in line
        assert set(line["model"]) == {"name", "version", "sha256"}
    events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    assert events == ["model_opened"] + ["inference"] * len(files)
    # The demo package is not signed: the first line on stderr says so (no key is pinned, so it opens);
    # then the plain progress lines (stderr is not a terminal here) and the summary.
    err = r.stderr.splitlines()
    assert err[0] == "medinfer: warning: model package is not signed (no manifest.sig): opened on its hashes alone"
    assert all(l.startswith("medinfer: progress: ") for l in err[1:-1])
    assert re.fullmatch(rf"medinfer: summary: {len(files)} images ok \(\d+ indeterminate\), 0 failed, 0 not processed, "
                        r"[0-9.]+ s", err[-1]), err[-1]


def test_bad_inputs_get_error_records_and_others_still_get_results(cli, demo_model, study, tmp_path):
    directory, rows = study
    text = tmp_path / "notes.txt"
    text.write_text("not dicom" * 40)
    good = directory / rows[0]["file"]
    r = run(cli, "predict", "--model", demo_model, tmp_path / "missing.dcm", text, good)
    assert r.returncode == 1
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [l["error"]["code"] for l in lines[:2]] == ["kNotFound", "kInvalidDicom"]
    assert all(l["error"]["message"] for l in lines[:2])
    assert "probability" in lines[2]


def test_a_missing_or_modified_model_gives_every_input_an_error_record(cli, demo_model, study, tmp_path):
    directory, rows = study
    files = [directory / row["file"] for row in rows[:2]]
    r = run(cli, "predict", "--model", tmp_path / "no-model", *files)
    assert r.returncode == 4  # the model package was refused
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [l["error"]["code"] for l in lines] == ["kNotFound", "kNotFound"]
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    (pkg / "model.pt").write_bytes((pkg / "model.pt").read_bytes() + b"\0")
    r = run(cli, "predict", "--model", pkg, *files)
    assert r.returncode == 4
    assert [json.loads(l)["error"]["code"] for l in r.stdout.splitlines()] == ["kModelIntegrity"] * 2
    manifest = json.loads((demo_model / "manifest.json").read_text())
    del manifest["risk"]
    (pkg / "model.pt").write_bytes((demo_model / "model.pt").read_bytes())
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    r = run(cli, "predict", "--model", pkg, files[0])
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 4 and err["code"] == "kInvalidArgument" and "risk" in err["message"]


def test_usage_errors_exit_2(cli, demo_model):
    for args in (["predict"], ["predict", "--model", demo_model], ["predict", "--bogus"], ["frobnicate"],
                 ["predict", "--model", demo_model, "--threads", "x", "a.dcm"], []):
        r = run(cli, *args)
        assert r.returncode == 2, args
        assert r.stderr.strip(), args


def test_chained_audit_log_verifies_exports_and_detects_tampering(cli, demo_model, study, tmp_path):
    import xml.etree.ElementTree as ET

    directory, rows = study
    files = [directory / row["file"] for row in rows[:4]]
    key = tmp_path / "audit.key"
    key.write_text("0 " + "ab" * 32 + "\n")
    log = tmp_path / "chain.jsonl"
    for mode in ("strict", "buffered"):
        r = run(cli, "predict", "--model", demo_model, "--audit-log", log, "--audit-key", key, "--audit-mode", mode,
                "--audit-user", "dr.house", *files)
        assert r.returncode == 0, r.stderr
    r = run(cli, "audit", "verify", log, "--key", key)
    assert r.returncode == 0 and r.stdout.startswith("OK: 12 records verified"), r.stdout
    records = [json.loads(line) for line in log.read_text().splitlines()]
    inference = [x for x in records if x["event"] == "inference"]
    assert len(inference) == 8 and all(x["actor"]["user_id"] == "dr.house" for x in inference)
    assert all(len(x["study_ref"]) == 64 for x in inference)
    assert "SYNTHETIC" not in log.read_text()

    atna = run(cli, "audit", "export", "--format", "atna", log)
    assert atna.returncode == 0
    messages = [ET.fromstring(line) for line in atna.stdout.splitlines()]
    assert len(messages) == len(records) and all(m.tag == "AuditMessage" for m in messages)
    assert messages[1].find("EventIdentification/EventID").get("csd-code") == "110103"
    fhir = [json.loads(line) for line in run(cli, "audit", "export", "--format", "fhir", log).stdout.splitlines()]
    assert all(f["resourceType"] == "AuditEvent" for f in fhir)

    lines = log.read_text().splitlines(keepends=True)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(lines[:3] + lines[4:]))
    r = run(cli, "audit", "verify", tampered, "--key", key)
    assert r.returncode == 1 and "FAILED at record 3" in r.stdout and "deleted" in r.stdout
    env = dict(os.environ, MEDINFER_AUDIT_KEY="ab" * 32)
    r = subprocess.run([cli, "audit", "verify", str(log)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(cli, "audit", "verify", log, "--key", tmp_path / "missing.key")
    assert r.returncode == 1 and "kNotFound" in r.stderr
    r = run(cli, "audit", "export", "--format", "csv", log)
    assert r.returncode == 2


def test_preprocess_writes_the_tensor_the_model_receives(cli, demo_model, study, tmp_path):
    import numpy as np
    import pydicom

    import preprocess_reference as ref

    directory, rows = study
    path = directory / rows[0]["file"]
    r = run(cli, "preprocess", "--model", demo_model, path, "--out", tmp_path / "t.npy")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shape"] == [1, 1, 64, 64]
    tensor = np.load(tmp_path / "t.npy")
    assert tensor.dtype == np.float32 and tensor.shape == (1, 1, 64, 64)
    ds = pydicom.dcmread(str(path))
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    manifest = json.loads((demo_model / "manifest.json").read_text())
    expected = ref.apply_spec(hu, manifest["preprocessing"])
    span = float(expected.max() - expected.min())
    assert np.max(np.abs(tensor[0, 0] - expected)) <= 1e-4 * span
    r = run(cli, "preprocess", "--model", demo_model, tmp_path / "missing.dcm", "--out", tmp_path / "x.npy")
    assert r.returncode == 1 and "kNotFound" in r.stderr and not (tmp_path / "x.npy").exists()
    r = run(cli, "preprocess", "--model", demo_model, path)
    assert r.returncode == 2


def test_preprocess_honours_the_input_steps_frame_and_modality_lut(cli, demo_model, study, tmp_path):
    import numpy as np
    import pydicom

    import preprocess_reference as ref

    directory, rows = study
    ds = pydicom.dcmread(str(directory / rows[0]["file"]))
    frames = np.stack([ds.pixel_array + 100 * k for k in range(3)]).astype(ds.pixel_array.dtype)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    ds.RescaleIntercept = -1024
    multi = tmp_path / "multi.dcm"
    ds.save_as(str(multi))
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    manifest = json.loads((demo_model / "manifest.json").read_text())
    manifest["preprocessing"] = [{"step": "frame", "index": 2}, {"step": "modality_lut", "apply": False}] + \
        manifest["preprocessing"]
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    r = run(cli, "preprocess", "--model", pkg, multi, "--out", tmp_path / "t.npy")
    assert r.returncode == 0, r.stderr
    tensor = np.load(tmp_path / "t.npy")
    expected = ref.apply_spec(frames[2].astype(np.float32), manifest["preprocessing"][2:])  # stored values, frame 2
    assert np.max(np.abs(tensor[0, 0] - expected)) <= 1e-4 * float(expected.max() - expected.min())
    # The pipeline reads the same frame the same way.
    r = run(cli, "predict", "--model", pkg, multi)
    assert r.returncode == 0, r.stdout
    manifest["preprocessing"][0]["index"] = 7  # past the last frame
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    r = run(cli, "preprocess", "--model", pkg, multi, "--out", tmp_path / "u.npy")
    assert r.returncode == 1 and "kInvalidArgument" in r.stderr and "frame" in r.stderr


def test_package_keygen_create_sign_verify_and_predict_with_pinned_keys(cli, demo_model, study, tmp_path):
    import base64

    def out(r):
        return json.loads(r.stdout.strip().splitlines()[-1])

    key = tmp_path / "k"
    r = run(cli, "package", "keygen", "--out", key)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o600" and (tmp_path / "k.pub").exists()
    r = run(cli, "package", "keygen", "--out", key)  # never overwrites a key: a refusal, not a usage error
    assert r.returncode == 1 and "exists (not overwritten)" in r.stderr
    run(cli, "package", "keygen", "--out", tmp_path / "other")
    shutil.copy(demo_model / "manifest.json", tmp_path / "template.json")
    shutil.copy(demo_model / "calibration_report.json", tmp_path / "calibration_report.json")
    pkg = tmp_path / "pkg"
    r = run(cli, "package", "create", "--model", demo_model / "model.pt", "--manifest", tmp_path / "template.json",
            "--out", pkg)
    assert r.returncode == 0, r.stderr
    assert out(r)["name"] == "demo-ct-lesion"
    assert out(run(cli, "package", "verify", pkg))["signed_by"] is None
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "k.pub", "--require-signature")
    assert r.returncode == 1 and "not signed" in out(r)["error"]["message"]

    r = run(cli, "package", "sign", pkg, "--key", key)
    assert r.returncode == 0, r.stderr
    key_id = out(r)["key_id"]
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "other.pub", "--trusted-key",
            tmp_path / "k.pub", "--require-signature")
    assert r.returncode == 0 and out(r)["ok"] and out(r)["signed_by"] == key_id
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "template.json")
    assert r.returncode == 1 and "not an Ed25519 public key" in out(r)["error"]["message"]

    # OpenSSL's own command line agrees that manifest.sig is an Ed25519 signature of manifest.json.
    sig = json.loads((pkg / "manifest.sig").read_text())
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(sig["signature"]))
    v = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "k.pub"), "-rawin",
                        "-in", str(pkg / "manifest.json"), "-sigfile", str(tmp_path / "sig.bin")],
                       capture_output=True, text=True)
    assert v.returncode == 0 and "Verified Successfully" in v.stdout

    path = study[0] / study[1][0]["file"]
    r = run(cli, "predict", "--model", pkg, "--trusted-key", tmp_path / "k.pub", "--require-signature", path)
    assert r.returncode == 0 and "probability" in json.loads(r.stdout.splitlines()[0])
    r = run(cli, "predict", "--model", pkg, "--trusted-key", tmp_path / "other.pub", path)
    assert r.returncode == 4 and json.loads(r.stdout.splitlines()[0])["error"]["code"] == "kModelIntegrity"

    # Tampering after signing: a changed manifest, then a forged signature from another key.
    text = (pkg / "manifest.json").read_text()
    (pkg / "manifest.json").write_text(text.replace('"demo-ct-lesion"', '"demo-ct-lesion-x"'))
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "k.pub")
    assert r.returncode == 1 and "does not verify" in out(r)["error"]["message"]
    (pkg / "manifest.json").write_text(text)
    (pkg / "model.pt").write_bytes((pkg / "model.pt").read_bytes() + b"\0")
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "k.pub")
    assert r.returncode == 1 and out(r)["error"]["code"] == "kModelIntegrity" and "SHA-256" in out(r)["error"]["message"]
    (pkg / "manifest.sig").write_text('{"algorithm": "Ed25519", "key_id": "%s", "signature": "!!"}' % key_id)
    r = run(cli, "package", "verify", pkg, "--trusted-key", tmp_path / "k.pub")
    assert r.returncode == 1 and out(r)["error"]["code"] == "kInvalidArgument"
    assert run(cli, "package", "create", "--model", demo_model / "model.pt", "--manifest",
               tmp_path / "template.json", "--out", pkg).returncode == 1  # not into a non-empty directory


def test_a_from_file_window_uses_the_voi_lut_sequence_like_pydicom(cli, demo_model, tmp_path):
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small.dcm"))
    for k in ("WindowCenter", "WindowWidth"):
        if k in ds:
            delattr(ds, k)
    item = Dataset()
    item.LUTDescriptor = [2000, 100, 16]
    item.LUTData = [int(65535 * (i / 1999) ** 0.5) for i in range(2000)]
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = [item]
    path = tmp_path / "vlut.dcm"
    ds.save_as(str(path))
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    manifest = json.loads((demo_model / "manifest.json").read_text())
    manifest["preprocessing"] = [{"step": "window", "from_file": True, "center": 0, "width": 1}]
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    r = run(cli, "preprocess", "--model", pkg, path, "--out", tmp_path / "t.npy")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "t.npy")[0, 0]
    ds = pydicom.dcmread(str(path))
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64) / 65535.0
    assert np.max(np.abs(got - expected)) <= 1e-6


def test_cli_md_reference_is_the_parsers_own_help(cli):
    """docs/cli.md's reference section is what `medinfer ... --help` prints today (scripts/cli_help.py)."""
    import pathlib
    import sys
    build = pathlib.Path(cli).parents[2]
    root = pathlib.Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "scripts" / "cli_help.py"), str(build), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
