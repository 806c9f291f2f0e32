"""Issue 12's recipes: the hosts call the library and hold no rule of their own. Each test is one thing a
reviewer ran: calibrate fit --model on multi-output packages, --help everywhere, exit 2 only for usage,
dependency exceptions at the CLI, the one Result serialiser and its JSON Schema, prepare()."""
import json
import subprocess

import jsonschema
import numpy as np
import pytest

import medinfer
from conftest import ROOT

RESULT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "result.schema.json").read_text())
AUDIT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "audit-record.schema.json").read_text())


def run(cli, *args, **kwargs):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """40 sample-study files with their truth rows."""
    out = tmp_path_factory.mktemp("labelled")
    subprocess.run(["/usr/bin/python3", str(ROOT / "scripts" / "make_sample_study.py"), "--out", str(out),
                    "--count", "40", "--seed", "9", "--no-obvious"], check=True, capture_output=True)
    rows = [line.split(",") for line in (out / "labels.csv").read_text().splitlines()[1:]]
    return out, rows


def test_calibrate_fit_over_a_multi_label_package_writes_a_package_predict_accepts(cli, heads, labelled, tmp_path):
    directory, rows = labelled
    labels = json.loads((heads / "multi-label" / "manifest.json").read_text())["labels"]
    csv = tmp_path / "labels.csv"
    lines = ["path," + ",".join(labels)]
    for i, (path, label) in enumerate(rows):
        lines.append(f"{directory / path},{label},{i % 2},{(i // 2) % 2}")
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ml-next"
    r = run(cli, "calibrate", "fit", "--model", heads / "multi-label", "--labels", csv, "--out", out)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert isinstance(manifest["calibration"], list) and len(manifest["calibration"]) == len(labels)
    report = json.loads((out / "calibration_report.json").read_text())
    assert report["task"] == "multi-label" and [x["label"] for x in report["labels"]] == labels
    p = run(cli, "predict", "--model", out, directory / rows[0][0])
    assert p.returncode == 0, p.stdout + p.stderr  # before: "one calibrator for 3 labels"
    line = json.loads(p.stdout)
    assert line["model"]["version"] == manifest["version"] and len(line["findings"]) == len(labels)
    v = run(cli, "package", "verify", out)
    assert v.returncode == 0 and json.loads(v.stdout)["task"] == "multi-label"
    # The labels file must name the package's labels, in order.
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\n" + "".join(f"{directory / p},{label}\n" for p, label in rows))
    r = run(cli, "calibrate", "fit", "--model", heads / "multi-label", "--labels", bad, "--out", tmp_path / "x")
    assert r.returncode == 1 and "header" in r.stderr and not (tmp_path / "x").exists()


def test_calibrate_fit_over_a_multi_class_package_fits_one_temperature(cli, heads, labelled, tmp_path):
    directory, rows = labelled
    classes = json.loads((heads / "multi-class" / "manifest.json").read_text())["labels"]
    csv = tmp_path / "classes.csv"
    csv.write_text("path,label\n" + "".join(f"{directory / p},{classes[i % 3]}\n" for i, (p, _) in enumerate(rows)))
    out = tmp_path / "mc-next"
    r = run(cli, "calibrate", "fit", "--model", heads / "multi-class", "--labels", csv, "--out", out)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration"]["method"] == "temperature"
    report = json.loads((out / "calibration_report.json").read_text())
    assert report["nll_after"] <= report["nll_before"] + 1e-12
    assert run(cli, "predict", "--model", out, directory / rows[0][0]).returncode == 0
    r = run(cli, "calibrate", "fit", "--model", heads / "multi-class", "--labels", csv, "--method", "platt",
            "--out", tmp_path / "mc-platt")
    assert r.returncode == 1 and "one temperature" in r.stderr and not (tmp_path / "mc-platt").exists()


COMMANDS = [[], ["predict"], ["audit"], ["audit", "verify"], ["audit", "export"], ["package"], ["package", "keygen"],
            ["package", "create"], ["package", "sign"], ["package", "verify"], ["inspect"], ["preprocess"],
            ["calibrate"], ["calibrate", "fit"], ["calibrate", "apply"], ["version"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "medinfer")
def test_help_works_on_every_command_and_subcommand(cli, command):
    r = run(cli, *command, "--help")
    assert r.returncode == 0, r.stderr  # before: "unknown option '--help'", exit 2
    assert "Usage:" in r.stdout and ("medinfer " + " ".join(command)).strip() in r.stdout


def test_help_shows_the_defaults_the_parser_uses(cli):
    text = run(cli, "predict", "--help").stdout
    assert "--threads INT:INT in [0 - 1024]=1" in text  # EngineOptions::intra_op_threads' default
    assert "=strict" in text


def test_exit_2_only_for_usage_errors_data_errors_exit_1(cli, demo_model, tmp_path):
    data = tmp_path / "scores.csv"
    data.write_text("score,label\n1.0,7\n")
    r = run(cli, "calibrate", "fit", "--scores", data, "--method", "platt", "--out", tmp_path / "o.json")
    assert r.returncode == 1 and "kInvalidArgument" in r.stderr and "label '7'" in r.stderr
    for args in (["calibrate", "fit", "--scores", data, "--method", "magic", "--out", tmp_path / "o.json"],
                 ["predict", "--model", demo_model, "--audit-mode", "fast", "x.dcm"],
                 ["predict", "--model", demo_model, "--audit-log", tmp_path / "a.jsonl", "--audit-mode", "buffered",
                  "x.dcm"],
                 ["audit", "export", "--format", "xml", data], ["package"], ["calibrate", "fit", "--bins", "0"]):
        r = run(cli, *args)
        assert r.returncode == 2, (args, r.stderr)


def test_package_sign_with_a_malformed_private_key_names_a_private_key(cli, demo_model, tmp_path):
    import shutil
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    key = tmp_path / "k"
    assert run(cli, "package", "keygen", "--out", key).returncode == 0
    text = key.read_text()
    (tmp_path / "broken").write_text(text[:40] + "\n-----END PRIVATE KEY-----\n")
    r = run(cli, "package", "sign", pkg, "--key", tmp_path / "broken")
    assert r.returncode == 1, r.stderr  # a data error, not usage
    assert "not an Ed25519 private key" in r.stderr  # before: "not an Ed25519 public key"
    assert not (pkg / "manifest.sig").exists()


def test_audit_export_of_a_malformed_record_is_a_clear_data_error(cli, tmp_path):
    log = tmp_path / "audit.jsonl"
    good = {"timestamp": "2026-12-01T10:00:00.000000Z", "event_id": "x", "sequence": 1, "event": "inference",
            "outcome": "ok", "raw_score": 1.0, "probability": 0.7, "tier": "high", "escalate": False,
            "rule": "tier_cutpoints"}
    log.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, sequence="seven")) + "\n")
    r = run(cli, "audit", "export", "--format", "fhir", log)
    assert r.returncode == 1, r.stderr
    assert "kInvalidArgument" in r.stderr and "line 2" in r.stderr and "sequence" in r.stderr
    assert "json.exception" not in r.stderr and "unexpected error" not in r.stderr
    assert r.stdout == ""  # no partial export passed off as whole


def test_result_to_json_is_the_cli_line_and_matches_its_schema(cli, demo_model, heads, study, tmp_path):
    jsonschema.Draft7Validator.check_schema(RESULT_SCHEMA)
    directory, rows = study
    files = [directory / row["file"] for row in rows]
    for model in (demo_model, heads / "multi-label", heads / "multi-class"):
        pipeline = medinfer.Pipeline.open(str(model))
        lines = [json.loads(x) for x in run(cli, "predict", "--model", model, *files).stdout.splitlines()]
        for path, line in zip(files, lines):
            jsonschema.validate(line, RESULT_SCHEMA)
            mine = json.loads(pipeline.predict(str(path)).to_json())
            jsonschema.validate(mine, RESULT_SCHEMA)
            assert list(line)[0] == "input" and list(line)[1:] == list(mine)  # same fields, same order
            for key in mine:
                if key != "latency_ms":
                    assert line[key] == mine[key], key
    bad = json.loads(medinfer.Pipeline.open(str(demo_model)).predict(str(files[0])).to_json())
    bad["rule"] = "a_rule_nobody_wrote"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, RESULT_SCHEMA)


def test_audit_records_match_their_schema_and_carry_per_label_rules(cli, demo_model, heads, study, tmp_path):
    jsonschema.Draft7Validator.check_schema(AUDIT_SCHEMA)
    directory, rows = study
    files = [directory / row["file"] for row in rows] + [tmp_path / "missing.dcm"]
    key = tmp_path / "k"
    key.write_text("ab" * 32 + "\n")
    for i, model in enumerate((demo_model, heads / "multi-label")):
        for chained in (False, True):
            log = tmp_path / f"audit-{i}-{chained}.jsonl"
            args = ["predict", "--model", model, "--audit-log", log] + (["--audit-key", key] if chained else [])
            run(cli, *args, *files)
            records = [json.loads(x) for x in log.read_text().splitlines()]
            assert {r["event"] for r in records} >= {"model_opened", "inference"}
            for record in records:
                jsonschema.validate(record, AUDIT_SCHEMA)
            if model != demo_model:
                inference = [r for r in records if r["event"] == "inference" and r["outcome"] != "error"]
                assert all(all("rule" in f for f in r["findings"]) for r in inference)
    assert any(r["outcome"] == "error" and r["error_code"] == "kNotFound" for r in records)


def test_prepare_is_the_tensor_predict_feeds_and_the_cli_writes(cli, demo_model, study, tmp_path):
    directory, rows = study
    path = directory / rows[0]["file"]
    tensor = medinfer.Pipeline.open(str(demo_model)).prepare(str(path))
    assert tensor.dtype == np.float32 and tensor.shape == (1, 1, 64, 64)
    assert run(cli, "preprocess", "--model", demo_model, path, "--out", tmp_path / "t.npy").returncode == 0
    assert np.array_equal(np.load(tmp_path / "t.npy"), tensor)
    with pytest.raises(medinfer.NotFoundError):
        medinfer.Pipeline.open(str(demo_model)).prepare(str(tmp_path / "missing.dcm"))
