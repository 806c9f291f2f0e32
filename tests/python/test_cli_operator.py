"""`medinfer predict` for operators: distinct exit statuses, the summary line, progress, --files-from,
and SIGINT/SIGTERM mid-run (what was started finishes and is printed, the audit chain closes and
verifies, what was not started is listed, exit 128 + signal)."""
import json
import os
import re
import signal
import subprocess

import make_sample_study
import numpy as np
import pytest


def run(cli, *args, **kw):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def read_lines(proc, n):
    """n lines of an unbuffered stdout, read without reading ahead: communicate() reads the pipe's file
    descriptor directly afterwards, so anything a buffered reader had taken beyond them would be lost."""
    return [proc.stdout.readline().decode() for _ in range(n)]


def summary(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("medinfer: summary: ")]
    assert len(lines) == 1, stderr
    m = re.fullmatch(r"medinfer: summary: (\d+) (\w+) ok \((\d+) indeterminate\), (\d+) failed(?: \((.*)\))?, "
                     r"(\d+) not processed, (?:(\d+) skipped, )?[0-9.]+ s", lines[0])
    assert m, lines[0]
    return {"ok": int(m[1]), "unit": m[2], "indeterminate": int(m[3]), "failed": int(m[4]), "by_code": m[5] or "",
            "not_processed": int(m[6]), "skipped": int(m[7] or 0)}


def test_exit_statuses_are_distinct(cli, demo_model, study, tmp_path):
    directory, rows = study
    good = [directory / r["file"] for r in rows[:3]]
    bad = tmp_path / "notes.txt"
    bad.write_text("not DICOM")
    r = run(cli, "predict", "--model", demo_model, *good)
    assert r.returncode == 0 and summary(r.stderr)["ok"] == 3
    r = run(cli, "predict", "--model", demo_model, good[0], bad, tmp_path / "missing.dcm")
    s = summary(r.stderr)
    assert r.returncode == 1 and s["ok"] == 1 and s["failed"] == 2
    assert s["by_code"] == "kInvalidDicom: 1, kNotFound: 1"
    r = run(cli, "predict", "--model", demo_model, bad, tmp_path / "missing.dcm")
    assert r.returncode == 3 and summary(r.stderr)["failed"] == 2  # every input failed
    r = run(cli, "predict", "--model", tmp_path / "no-such-model", *good)
    assert r.returncode == 4 and len(r.stdout.splitlines()) == 3  # refused: every input still has its line
    assert run(cli, "predict", "--model", demo_model).returncode == 2  # no inputs: usage
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(cli, "predict", "--model", demo_model, empty).returncode == 3  # nothing found to score


def test_files_from_stdin_and_a_file_and_quiet(cli, demo_model, study, tmp_path):
    directory, rows = study
    listing = "\n".join(str(directory / r["file"]) for r in rows) + "\n\n"
    r = run(cli, "predict", "--model", demo_model, "--files-from", "-", input=listing)
    assert r.returncode == 0, r.stderr
    assert [json.loads(l)["input"] for l in r.stdout.splitlines()] == [str(directory / r["file"]) for r in rows]
    assert "medinfer: progress: " in r.stderr  # not a terminal: plain lines
    (tmp_path / "list.txt").write_text(listing)
    r = run(cli, "predict", "--model", demo_model, "--quiet", "--files-from", tmp_path / "list.txt")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(rows)
    assert "progress" not in r.stderr and summary(r.stderr)["ok"] == len(rows)
    r = run(cli, "predict", "--model", demo_model, "--files-from", tmp_path / "no-list.txt")
    assert r.returncode == 1 and "no-list.txt" in r.stderr


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_finishes_what_started_closes_the_chain_and_lists_the_rest(cli, demo_model, study, tmp_path,
                                                                                   sig, status):
    directory, rows = study
    key = tmp_path / "audit.key"
    key.write_text(os.urandom(32).hex() + "\n")
    log = tmp_path / "chain.jsonl"
    n = 4000
    listing = "".join(f"{directory / rows[i % len(rows)]['file']}\n" for i in range(n))
    unprocessed = tmp_path / "unprocessed.txt"
    proc = subprocess.Popen([cli, "predict", "--model", str(demo_model), "--audit-log", str(log), "--audit-key",
                             str(key), "--jobs", "2", "--list-unprocessed", str(unprocessed), "--files-from", "-"],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdin.write(listing.encode())
    proc.stdin.close()
    first = read_lines(proc, 30)  # well under way
    proc.send_signal(sig)
    proc.stdin = None  # closed above: communicate() must not flush it
    rest, err = (b.decode() for b in proc.communicate(timeout=120))
    assert proc.returncode == status, err
    printed = [json.loads(l) for l in first + rest.splitlines() if l.strip()]
    assert all("probability" in l for l in printed)
    s = summary(err)
    assert s["ok"] == len(printed) and s["ok"] + s["not_processed"] == n and s["not_processed"] > 0
    # one line says how many were not processed (not one line each), --list-unprocessed holds their names
    assert f"medinfer: {s['not_processed']} not processed (never read, not audited): listed in {unprocessed}" in err
    assert len(unprocessed.read_text().splitlines()) == s["not_processed"]
    assert len(err.splitlines()) < 10, err
    # the last progress line counts what was done, not what was cancelled
    progress = [l for l in err.splitlines() if l.startswith("medinfer: progress: ")]
    assert progress[-1].startswith(f"medinfer: progress: {s['ok']}/{n} images"), progress[-1]
    records = [json.loads(l) for l in log.read_text().splitlines()]
    inference = [r for r in records if r.get("event") == "inference"]
    assert len(inference) == len(printed)  # nothing audited that was not printed, nothing printed unaudited
    v = run(cli, "audit", "verify", log, "--key", key)
    assert v.returncode == 0 and "(closed)" in v.stdout, v.stdout


def test_a_signal_during_by_series_never_cuts_a_series_short(cli, demo_model, tmp_path):
    rng = np.random.default_rng(1)
    study_uid = "1.2.826.0.1.3680043.8.498.88"
    (tmp_path / "in").mkdir()
    for s in range(80):
        for i in range(3):
            make_sample_study.write_ct(str(tmp_path / "in" / f"s{s:02d}_{i}.dcm"), rng.normal(0, 20, (64, 64)).astype(np.float32),
                                       i, study_uid, f"{study_uid}.{s}", 88)
    proc = subprocess.Popen([cli, "predict", "--model", str(demo_model), "--by", "series", str(tmp_path / "in")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = read_lines(proc, 3)
    proc.send_signal(signal.SIGINT)
    rest, err = (b.decode() for b in proc.communicate(timeout=120))
    assert proc.returncode == 130, err
    lines = [json.loads(l) for l in first + rest.splitlines() if l.strip()]
    assert lines and all(l["slices"] == 3 and l["failed_slices"] == 0 for l in lines)  # whole series only
    s = summary(err)
    assert s["unit"] == "series" and s["ok"] == len(lines) and s["ok"] + s["not_processed"] == 80
    assert s["not_processed"] > 0
    assert f"medinfer: {s['not_processed']} not processed (never read, not audited); --list-unprocessed FILE" in err


def test_results_carry_the_uids_and_csv_parses_back(cli, demo_model, heads, study, tmp_path):
    import csv
    import io
    import pydicom
    directory, rows = study
    files = [directory / r["file"] for r in rows[:3]]
    bad = tmp_path / "bad, \"quoted\".txt"
    bad.write_text("not DICOM")
    r = run(cli, "predict", "--model", demo_model, *files)
    for line, f in zip(map(json.loads, r.stdout.splitlines()), files):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert (line["study_instance_uid"], line["series_instance_uid"], line["sop_instance_uid"]) == \
            (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    r = run(cli, "predict", "--model", heads / "multi-label", "--format", "csv", *files, bad)
    assert r.returncode == 1, r.stderr
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(table[0]) == ["input", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "label",
                              "probability", "raw_score", "confidence", "tier", "escalate", "indeterminate", "reason",
                              "rule", "model_name", "model_version", "input_sha256", "sr", "fhir", "error_code",
                              "error_message"]
    assert len(table) == 3 * 3 + 1  # one row per finding, one per failed input
    assert [t["label"] for t in table[:3]] == ["lesion", "calcification", "artifact"]
    jsonl = [json.loads(l) for l in run(cli, "predict", "--model", heads / "multi-label", *files).stdout.splitlines()]
    for k, t in enumerate(table[:9]):
        finding = jsonl[k // 3]["findings"][k % 3]
        assert float(t["probability"]) == finding["probability"] and t["tier"] == finding["tier"]
        assert t["sop_instance_uid"] == jsonl[k // 3]["sop_instance_uid"]
    assert table[-1]["input"] == str(bad) and table[-1]["error_code"] == "kInvalidDicom" and table[-1]["label"] == ""
    assert run(cli, "predict", "--model", demo_model, "--format", "xml", *files).returncode == 2


def test_a_folder_tree_with_junk_a_dicomdir_and_a_series_with_a_gap(cli, demo_model, tmp_path):
    """What an operator points predict at: a tree with a text file, a DICOMDIR (written by DCMTK's
    dcmmkdir) and a series with a missing slice. --recursive descends, the junk is reported, the gap is
    a warning on its series, and CSV (for --by series and --by study) parses back with Python's csv."""
    import csv
    import io
    study_uid = "1.2.826.0.1.3680043.8.498.99"
    root = tmp_path / "tree"
    (root / "CT" / "S1").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in [0, 1, 2, 4, 5]:  # slice 3 missing
        make_sample_study.write_ct(str(root / "CT" / "S1" / f"IM{i}"), rng.normal(0, 20, (64, 64)).astype(np.float32),
                                   i, study_uid, study_uid + ".1", 99)
    (root / "README.txt").write_text("scanned at night")
    d = subprocess.run(["dcmmkdir", "--recurse", "--input-directory", str(root), "--output-file",
                        str(root / "DICOMDIR"), "--invent", "CT"], capture_output=True, text=True)
    assert d.returncode == 0, d.stderr
    # --no-recursive: only the top folder's own files (README.txt, DICOMDIR), neither an image: nothing to
    # read, one line for the folder naming what was searched
    r = run(cli, "predict", "--model", demo_model, "--no-recursive", root)
    assert r.returncode == 3 and len(r.stdout.splitlines()) == 1, r.stderr
    assert "not recursively" in r.stderr and "2 files skipped" in r.stderr
    r = run(cli, "predict", "--model", demo_model, "--recursive", "--by", "series", root)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    skipped = {pathlib_name(l["input"]): l["skipped"]["reason"] for l in lines if "skipped" in l}
    assert "DICOMDIR" in skipped["DICOMDIR"] and "README.txt" in skipped
    (series,) = [l for l in lines if "aggregation" in l]
    assert series["slices"] == 5 and [w["kind"] for w in series["warnings"]] == ["gap"]
    r = run(cli, "predict", "--model", demo_model, "--recursive", "--by", "series", "--format", "csv", root)
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.returncode == 0 and len(table) == 3, r.stdout
    assert sorted(pathlib_name(t["input"]) for t in table if t["error_code"] == "skipped") == ["DICOMDIR", "README.txt"]
    (row,) = [t for t in table if t["error_code"] == ""]
    assert row["series_instance_uid"] == study_uid + ".1" and float(row["probability"]) == series["probability"]
    r = run(cli, "predict", "--model", demo_model, "--recursive", "--by", "study", "--format", "csv", root)
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.returncode == 0 and [t["study_instance_uid"] for t in table if t["error_code"] == ""] == [study_uid]


def pathlib_name(p):
    return os.path.basename(p)


def test_help_unknown_options_and_the_progress_rate(cli, demo_model, study):
    directory, rows = study
    r = run(cli, "help")
    assert r.returncode == 0 and "predict" in r.stdout and "Subcommands:" in r.stdout, r.stdout
    r = run(cli, "help", "predict")
    assert r.returncode == 0 and "--model" in r.stdout and "--no-recursive" in r.stdout, r.stdout + r.stderr
    r = run(cli, "help", "audit", "verify")
    assert r.returncode == 0 and "--key" in r.stdout, r.stdout + r.stderr
    r = run(cli, "help", "predcit")
    assert r.returncode == 2 and "no command 'predcit'; did you mean 'predict'?" in r.stderr, r.stderr
    r = run(cli, "predict", "--modle", demo_model, directory)
    assert r.returncode == 2 and "unknown option --modle for 'predict'; did you mean '--model'?" in r.stderr, r.stderr
    assert "--model is required" not in r.stderr
    r = run(cli, "predict", "--model", demo_model, "--bogus-thing", directory)
    assert r.returncode == 2 and "unknown option --bogus-thing for 'predict'" in r.stderr, r.stderr
    r = run(cli, "predict", "--model", demo_model, directory / rows[0]["file"])
    (last,) = [l for l in r.stderr.splitlines() if l.startswith("medinfer: progress: 1/")]
    assert re.fullmatch(r"medinfer: progress: 1/1 images, [0-9.]+/s, ETA 0m00s", last), last
