"""Shared fixtures: the built module and CLI, the demo package, and a sample study written once per session."""
import csv
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR", ROOT / "build"))
sys.path.insert(0, str(BUILD / "bindings" / "python"))
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def demo_model():
    return ROOT / "models" / "demo"


@pytest.fixture(scope="session")
def cli():
    path = BUILD / "examples" / "cli" / "medinfer"
    assert path.exists(), f"build the CLI first: {path}"
    return str(path)


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """(directory, rows of truth.csv) for a sample study made by scripts/make_sample_study.py."""
    out = tmp_path_factory.mktemp("study")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample_study.py"), "--out", str(out)],
                   check=True, capture_output=True)
    with open(out / "truth.csv") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows


@pytest.fixture(scope="session")
def heads(tmp_path_factory):
    """Seeded TorchScript multi-label and multi-class packages (scripts/make_head_models.py)."""
    out = tmp_path_factory.mktemp("heads")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_head_models.py"), "--out", str(out)],
                   check=True, capture_output=True)
    return out
