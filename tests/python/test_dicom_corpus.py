"""Conformance against ../shared/dicom-corpus (real third-party files with reference decodes).

Every row of MANIFEST.tsv is checked through `medinfer inspect --json`: header values, the stored
array's dtype/shape/photometric, and its SHA-256 where the reference is trustworthy (cross-checked
against an uncompressed original or agreed by independent decoder families); lossy or single-family
references are compared by min/max/mean. Malformed files must fail with a medinfer error code, and
non-image objects must say they are not images. Skips cleanly when the corpus is absent.
"""
import csv
import json
import os
import pathlib
import subprocess

import pytest

import medinfer

from conftest import ROOT

CORPUS = pathlib.Path(os.environ.get("MEDINFER_DICOM_CORPUS", ROOT.parent / "shared" / "dicom-corpus"))
MANIFEST = CORPUS / "MANIFEST.tsv"
pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason=f"no DICOM corpus at {CORPUS}")

ROWS = []
if MANIFEST.exists():
    with open(MANIFEST, newline="") as fh:
        ROWS = list(csv.DictReader(fh, delimiter="\t"))

# Files no Debian decoder reads, so the manifest has no reference: each must decode to exactly what
# its uncompressed sibling (same images, other encoding) decodes to.
SIBLINGS = {
    "pydicom-data/liver_deflate.dcm": "pydicom-data/liver_expb.dcm",
    "pydicom-data/liver_nonbyte_aligned_rle.dcm": "pydicom-data/liver_nonbyte_aligned.dcm",
}
TRUSTED = ("cross-checked", "agreed by")


@pytest.fixture(scope="module")
def inspected(cli):
    files = [str(CORPUS / r["file"]) for r in ROWS]
    proc = subprocess.run([cli, "inspect", "--json", *files], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        j = json.loads(line)
        out[os.path.relpath(j["input"], CORPUS)] = j
    assert len(out) == len(ROWS)
    return out


def _trusted(row):
    return row["ref_trust"].startswith(TRUSTED)


def _lossy(row):
    name = row["ts_name"]
    return any(k in name for k in ("Baseline", "Extended", "Near-Lossless", "Lossy")) or (
        "JPEG 2000" in name and "Lossless" not in name) or row["ts_uid"] == "1.2.840.10008.1.2.4.203"


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_corpus_file(row, inspected):
    j = inspected[row["file"]]
    if row["malformed"] == "yes":
        if "error" in j:
            assert j["error"]["code"] in ("kInvalidDicom", "kUnsupported"), j
            return
        # It decoded: then it must equal what the reference decoders made of it, if anything.
        assert row["ref_sha256"], j
        assert j["stored"]["sha256"] == row["ref_sha256"], j
        return
    if row["has_pixel_data"] == "no":
        # described as a non-image object (an SR, a DICOMDIR, ...), not refused
        assert "error" not in j and j["image"] is False and j["sop_class_uid"], j
        with pytest.raises(medinfer.InvalidDicomError, match="not an image"):
            medinfer.dicom.read_instance(str(CORPUS / row["file"]))
        return
    assert "error" not in j, j
    if row["ts_uid"].startswith("1.2.840"):
        assert j["transfer_syntax_uid"] == row["ts_uid"]
    for field, column in (("rows", "rows"), ("columns", "cols"), ("frames", "frames"),
                          ("samples_per_pixel", "samples_per_pixel"), ("bits_allocated", "bits_allocated"),
                          ("bits_stored", "bits_stored"), ("pixel_representation", "pixel_representation")):
        if row[column]:
            assert j[field] == int(row[column]), (field, j[field], row[column])
    stored = j["stored"]
    if row["file"] in SIBLINGS:
        sibling = inspected[SIBLINGS[row["file"]]]["stored"]
        assert stored["sha256"] == sibling["sha256"]
        assert stored["shape"] == sibling["shape"]
        return
    assert stored["dtype"] == row["ref_dtype"]
    assert "x".join(str(v) for v in stored["shape"]) == row["ref_shape_fxrxcxs"]
    assert stored["photometric"] == row["ref_out_photometric"]
    if _trusted(row) and not _lossy(row):
        assert stored["sha256"] == row["ref_sha256"]
    else:
        assert stored["min"] == pytest.approx(float(row["ref_min"]), abs=2)
        assert stored["max"] == pytest.approx(float(row["ref_max"]), abs=2)
        assert stored["mean"] == pytest.approx(float(row["ref_mean"]), rel=1e-3, abs=0.5)


def test_corpus_summary(inspected):
    """Every file with a trustworthy reference decodes bit-exact (lossy ones included, here)."""
    exact = [r["file"] for r in ROWS if r["ref_sha256"] and _trusted(r) and r["malformed"] != "yes"]
    same = [f for f in exact if inspected[f].get("stored", {}).get("sha256") == dict(
        (r["file"], r["ref_sha256"]) for r in ROWS)[f]]
    assert len(same) == len(exact), sorted(set(exact) - set(same))


@pytest.mark.parametrize("name", ["pydicom-data/gdcm-US-ALOKA-16.dcm", "pydicom/examples_palette.dcm",
                                  "pydicom-data/OBXXXX1A_rle.dcm"])
def test_palette_color_to_rgb_matches_pydicom(name):
    """PALETTE COLOR looked up (ALOKA's is a segmented 16-bit LUT) equals pydicom's apply_color_lut."""
    import numpy as np
    import pydicom
    from pydicom.pixel_data_handlers.util import apply_color_lut

    import medinfer

    path = CORPUS / name
    rgb, header = medinfer.dicom.read_instance(str(path))
    assert header.photometric_interpretation == "PALETTE COLOR"
    ds = pydicom.dcmread(str(path))
    np.testing.assert_array_equal(rgb, apply_color_lut(ds.pixel_array, ds))
