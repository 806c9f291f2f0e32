"""models/manifest.schema.json describes what ModelPackage::open accepts: the demo manifest is valid, and
manifests the SDK refuses for a structural reason are invalid under the schema too."""
import copy
import json
import shutil
import subprocess

import jsonschema
import pytest

from conftest import ROOT

SCHEMA = json.loads((ROOT / "models" / "manifest.schema.json").read_text())
DEMO = json.loads((ROOT / "models" / "demo" / "manifest.json").read_text())


def test_schema_is_valid_and_accepts_the_demo_manifest():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(DEMO, SCHEMA)


def test_a_coded_label_is_valid_under_the_schema_and_opens(cli, tmp_path):
    coded = copy.deepcopy(DEMO)
    coded["labels"] = [{"name": "lesion", "code_value": "52988006", "coding_scheme": "SCT", "code_meaning": "Lesion"}]
    jsonschema.validate(coded, SCHEMA)
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "models" / "demo", pkg)
    (pkg / "manifest.json").write_text(json.dumps(coded))
    r = subprocess.run([cli, "package", "verify", str(pkg)], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["labels"] == ["lesion"], r.stdout


@pytest.mark.parametrize("mutate", [
    lambda m: m.pop("files"),
    lambda m: m.update(version="1.1"),
    lambda m: m.update(format_version=2),
    lambda m: m.update(task="segmentation"),
    lambda m: m.update(labels=["lesion", "lesion"]),
    lambda m: m.update(calibration={"temperature": 1.0}),
    lambda m: m["input"].update(shape=[1, 1, 64]),
    lambda m: m["files"].update({"model.pt": "ABC"}),
    lambda m: m["preprocessing"].append({"step": "sharpen"}),
    lambda m: m["input"].update(shape=[1, 1, 8, 8, 64, 64]),
    lambda m: m.update(series={"aggregation": "median"}),
    lambda m: m.update(series={"aggregation": "max", "evidence_slices": 65}),
    lambda m: m.update(series_selection={"any_of": [{"orientation": ["diagonal"]}]}),
    lambda m: m.update(series_selection={"any_of": [{}]}),
    lambda m: m.update(labels=[{"name": "lesion", "code_value": "52988006", "coding_scheme": "SCT"}]),
    lambda m: m.update(labels=[{"name": "lesion", "code_value": "52988006", "coding_scheme": "S\\CT", "code_meaning": "Lesion"}]),
    lambda m: m.update(labels=[{"name": "lesion", "code_value": "x" * 65, "coding_scheme": "SCT", "code_meaning": "Lesion"}]),
    lambda m: m.update(labels=[{"name": "", "code_value": "1", "coding_scheme": "SCT", "code_meaning": "Lesion"}]),
])
def test_what_the_schema_refuses_the_sdk_refuses(mutate, cli, tmp_path):
    bad = copy.deepcopy(DEMO)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "models" / "demo", pkg)
    (pkg / "manifest.json").write_text(json.dumps(bad))
    r = subprocess.run([cli, "package", "verify", str(pkg)], capture_output=True, text=True)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
