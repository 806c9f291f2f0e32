"""The package's typing and documentation, and the Python examples: the committed stubs are what
scripts/gen_stubs.py writes from the built extension, mypy --strict accepts the examples against them,
every public class, method and property has a docstring, score_archive.py on a 2-process Dask
LocalCluster gives the same table as one process (with every worker's audit chain verified), and
reliability.py draws its diagram."""
import csv
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import make_sample_study
import medinfer
from medinfer import _medinfer

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR", ROOT / "build"))
EXAMPLES = ROOT / "examples" / "python"
ENV = {**os.environ, "PYTHONPATH": str(BUILD / "bindings" / "python")}


def test_the_stubs_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_stubs.py"), "--check"], env=ENV,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_mypy_strict_accepts_the_examples(tmp_path):
    pytest.importorskip("mypy")
    typed = tmp_path / "typed_use.py"
    typed.write_text(
        "import pathlib\nimport medinfer\n\n"
        "def score(model: pathlib.Path, files: list[pathlib.Path]) -> list[float]:\n"
        "    options = medinfer.PipelineOptions()\n"
        "    options.engine.intra_op_threads = 1\n"
        "    options.read = medinfer.ReadOptions()  # the top-level name is dicom.ReadOptions itself\n"
        "    with medinfer.Pipeline.open(model, options) as p:\n"
        "        out = p.predict_many(files, progress=True)\n"
        "    return [r.probability for r in out if isinstance(r, medinfer.Result)]\n\n"
        "m: medinfer.calibration.Metrics = medinfer.calibration.compute_metrics([0.2], [0])\n"
        "v: medinfer.audit.VerifyResult = medinfer.audit.verify_log('a.jsonl', 'k')\n"
        "img, header = medinfer.dicom.read_instance('x.dcm')\n")
    bad = tmp_path / "typed_misuse.py"
    bad.write_text("import medinfer\nx: int = medinfer.Pipeline.open('m').predict('x.dcm').tier\n")
    env = {**ENV, "MYPYPATH": str(BUILD / "bindings" / "python")}
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache")]
    r = subprocess.run(cmd + [str(EXAMPLES / "score_archive.py"), str(EXAMPLES / "reliability.py"), str(typed)],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(cmd + [str(bad)], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and 'Incompatible types in assignment (expression has type "str"' in r.stdout, r.stdout


def _documented(obj, name):
    doc = (getattr(obj, "__doc__", "") or "").strip()
    lines = [l for l in doc.splitlines() if l.strip() and not re.match(r"^(\d+\. )?" + re.escape(name) + r"\(.*\) -> ", l.strip())
             and l.strip() not in ("Overloaded function.", f"{name}(*args, **kwargs)")]
    return bool(lines)


def test_every_public_name_has_a_docstring():
    missing = []
    modules = {"medinfer": _medinfer, **{f"medinfer.{s}": getattr(_medinfer, s)
                                          for s in ("dicom", "preprocess", "calibration", "risk", "audit", "package")}}
    for mname, mod in modules.items():
        assert _documented(mod, ""), mname
        for name, value in vars(mod).items():
            if name.startswith("_") or inspect.ismodule(value):
                continue
            if isinstance(value, type):
                if not _documented(value, name):
                    missing.append(f"{mname}.{name}")
                if issubclass(value, BaseException):
                    continue
                for attr, member in vars(value).items():
                    if attr.startswith("_"):
                        continue
                    target = member.__func__ if isinstance(member, staticmethod) else member
                    if isinstance(member, property):
                        if not (member.__doc__ or "").strip() or (member.__doc__ or "").startswith("(self"):
                            missing.append(f"{mname}.{name}.{attr}")
                    elif callable(target) and not _documented(target, attr):
                        missing.append(f"{mname}.{name}.{attr}()")
            elif callable(value) and not _documented(value, name):
                missing.append(f"{mname}.{name}()")
    assert not missing, missing
    assert _documented(medinfer.Pipeline.predict_many, "predict_many")
    assert "Predicts many inputs" in subprocess.run(
        [sys.executable, "-c", "import medinfer; help(medinfer.Pipeline)"], env=ENV, capture_output=True,
        text=True).stdout


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """4 series of 5 CT slices in nested folders, plus a file that is not DICOM."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(18)
    study = "1.2.826.0.1.3680043.8.498.18"
    for s in range(4):
        folder = root / f"patient{s // 2}" / f"series{s}"
        folder.mkdir(parents=True)
        for i in range(5):
            make_sample_study.write_ct(str(folder / f"{i:02d}.dcm"), rng.normal(0, 30, (64, 64)).astype(np.float32), i,
                                       study, f"{study}.{s + 1}", 17)
    (root / "README.txt").write_text("not DICOM")
    return root


def test_score_archive_on_a_local_dask_cluster_equals_one_process(archive, tmp_path, demo_model):
    pytest.importorskip("distributed")
    key = tmp_path / "audit.key"
    key.write_text("ef" * 32)
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"scores-{workers}.csv"
        audit = tmp_path / f"audit-{workers}"
        r = subprocess.run([sys.executable, str(EXAMPLES / "score_archive.py"), "--model", str(demo_model), "--out",
                            str(out), "--workers", str(workers), "--audit-dir", str(audit), "--audit-key", str(key),
                            str(archive)], env=ENV, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "scored 20 of 20 files" in r.stdout, r.stdout
        with open(out, newline="") as fh:
            runs[workers] = list(csv.DictReader(fh))
        logs = sorted(audit.glob("worker-*.jsonl"))
        assert logs and r.stdout.count(": ok (") == len(logs), r.stdout
        inferences = 0
        for log in logs:
            verdict = medinfer.audit.verify_log(log, key)
            assert verdict.ok and verdict.closed, (log, verdict)
            inferences += sum(1 for line in log.read_text().splitlines() if json.loads(line).get("event") == "inference")
        assert inferences == 20  # every file audited once, by whichever worker scored it
    assert runs[0] == runs[2]
    assert len(runs[2]) == 20 and all(row["error"] == "" for row in runs[2])
    assert len({row["series_instance_uid"] for row in runs[2]}) == 4


def test_reliability_draws_a_diagram(study, tmp_path, demo_model):
    pytest.importorskip("matplotlib")
    directory, _ = study
    out = tmp_path / "reliability.png"
    r = subprocess.run([sys.executable, str(EXAMPLES / "reliability.py"), "--model", str(demo_model), "--labels",
                        str(directory / "truth.csv"), "--method", "platt", "--out", str(out)], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fitted = json.loads(r.stdout.splitlines()[0])
    assert fitted["method"] == "platt"
    assert re.search(r"ECE [0-9.]+ -> [0-9.]+", r.stdout)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.dcm,2\n")
    r = subprocess.run([sys.executable, str(EXAMPLES / "reliability.py"), "--model", str(demo_model), "--labels",
                        str(bad), "--out", str(out)], env=ENV, capture_output=True, text=True)
    assert r.returncode != 0 and "label must be 0 or 1" in r.stderr
