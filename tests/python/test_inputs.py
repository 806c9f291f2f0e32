"""One rule for "a directory's files" (medinfer.Inputs / dicom.find_files), as a new user meets it through
the CLI and examples/python/score_archive.py: folders searched recursively by default, symbolic links to
series folders followed, files that are not DICOM skipped and listed (never a failure), and nothing found
is an error naming what was searched. Each test is a recipe from issue 26's "Found" list."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

import make_sample_study

ROOT = pathlib.Path(__file__).resolve().parents[2]
STUDY_UID = "1.2.826.0.1.3680043.8.498.26"


def run(cli, *args):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300)


def write_series(folder, n, series_uid, seed=26):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        make_sample_study.write_ct(str(folder / f"IM{i:03d}"), rng.normal(0, 20, (64, 64)).astype(np.float32), i,
                                   STUDY_UID, series_uid, seed)


def lines_of(r):
    return [json.loads(l) for l in r.stdout.splitlines()]


def test_by_series_on_a_study_of_one_folder_per_series(cli, demo_model, tmp_path):
    study = tmp_path / "STUDY"
    write_series(study / "series1", 5, STUDY_UID + ".1", seed=1)
    write_series(study / "series2", 4, STUDY_UID + ".2", seed=2)
    r = run(cli, "predict", "--model", demo_model, "--by", "series", f"{study}/")
    assert r.returncode == 0, r.stderr
    series = [l for l in lines_of(r) if "aggregation" in l]
    assert sorted(l["slices"] for l in series) == [4, 5]
    assert "medinfer: summary: 2 series ok" in r.stderr


def test_an_empty_folder_or_one_with_only_subfolders_names_what_was_searched(cli, demo_model, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "nested" / "a" / "b").mkdir(parents=True)
    for folder in (tmp_path / "empty", tmp_path / "nested"):
        for by in ("image", "series", "study"):
            r = run(cli, "predict", "--model", demo_model, "--by", by, folder)
            assert r.returncode == 3, r.stderr
            assert f"kNotFound: no DICOM files to read: searched {folder} (recursively" in r.stderr, r.stderr
            (line,) = lines_of(r)
            assert line["input"] == str(folder) and line["error"]["code"] == "kNotFound"


def test_symbolic_links_to_series_folders_are_followed(cli, demo_model, tmp_path):
    store = tmp_path / "store"
    write_series(store / "a", 3, STUDY_UID + ".1", seed=3)
    write_series(store / "b", 2, STUDY_UID + ".2", seed=4)
    view = tmp_path / "view"
    view.mkdir()
    (view / "first").symlink_to(store / "a")
    (view / "second").symlink_to(store / "b")
    (view / "again").symlink_to(store / "a")   # a second link to one folder: searched once
    (view / "loop").symlink_to(view)           # a loop: searched once, never forever
    r = run(cli, "predict", "--model", demo_model, view)
    assert r.returncode == 0, r.stderr
    results = [l for l in lines_of(r) if "probability" in l]
    assert len(results) == 5
    r = run(cli, "predict", "--model", demo_model, "--by", "series", view)
    assert r.returncode == 0 and sorted(l["slices"] for l in lines_of(r) if "aggregation" in l) == [2, 3], r.stderr
    # score_archive.py (the Dask example) indexes the same way
    out = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    a = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "score_archive.py"), "--model",
                        str(demo_model), "--out", str(out), "--workers", "0", str(view)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert a.returncode == 0 and "scored 5 of 5 files" in a.stdout, a.stdout + a.stderr
    # and an archive holding nothing is a failure that says so, not "scored 0 of 0 files"
    (tmp_path / "nothing").mkdir()
    a = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "score_archive.py"), "--model",
                        str(demo_model), "--out", str(out), "--workers", "0", str(tmp_path / "nothing")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert a.returncode == 1 and "no DICOM images under" in a.stderr, a.stdout + a.stderr


def test_a_folder_with_dicom_files_and_a_labels_csv(cli, demo_model, tmp_path):
    folder = tmp_path / "cases"
    write_series(folder, 3, STUDY_UID + ".1", seed=5)
    (folder / "labels.csv").write_text("file,label\nIM000,1\n")
    for by, unit in (("image", "images"), ("series", "series"), ("study", "studies")):
        r = run(cli, "predict", "--model", demo_model, "--by", by, folder)
        assert r.returncode == 0, (by, r.stdout, r.stderr)
        (skipped,) = [l for l in lines_of(r) if isinstance(l.get("skipped"), dict)]  # (a study's "skipped" is its series)
        assert skipped["input"] == str(folder / "labels.csv") and "not DICOM" in skipped["skipped"]["reason"]
        assert f"1 {unit} ok" in r.stderr or (by == "image" and "3 images ok" in r.stderr), r.stderr
        assert ", 0 failed, 0 not processed, 1 skipped, " in r.stderr, r.stderr
    # a file named on the command line is read as given: not DICOM is its failure, as before
    r = run(cli, "predict", "--model", demo_model, folder / "labels.csv", folder / "IM000")
    assert r.returncode == 1 and "kInvalidDicom: 1" in r.stderr


def test_python_inputs_and_find_files(tmp_path):
    import medinfer
    write_series(tmp_path / "s", 2, STUDY_UID + ".1", seed=6)
    (tmp_path / "s" / "labels.csv").write_text("x")
    found = medinfer.dicom.find_files([tmp_path])
    assert [pathlib.Path(f).name for f in found.files] == ["IM000", "IM001"]
    assert [pathlib.Path(s.path).name for s in found.skipped] == ["labels.csv"]
    resolved = medinfer.Inputs([tmp_path]).resolve()
    assert [pathlib.Path(i.path).name for i in resolved.inputs] == ["IM000", "IM001"]
    assert resolved.searched == [str(tmp_path)]
    (tmp_path / "empty").mkdir()
    try:
        medinfer.Inputs([tmp_path / "empty"]).resolve()
    except medinfer.NotFoundError as e:
        assert str(tmp_path / "empty") in str(e)
    else:
        raise AssertionError("an empty folder resolved")
