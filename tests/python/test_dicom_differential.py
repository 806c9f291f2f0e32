"""Differential conformance: for every file of the shared corpus and every file these tests generate,
medinfer's stored values against GDCM's (python3-gdcm, directly) and pydicom's (python3-pydicom, with
whatever handler it has), wherever they decode. Every disagreement is listed; the test fails on one
that differential_allowlist.json does not explain (docs/dicom.md, "Where the toolkits disagree")."""
import csv
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dicom_factory as fac
import medinfer
from conftest import ROOT

pytest.importorskip("gdcm")
pytest.importorskip("pydicom")

CORPUS = pathlib.Path(os.environ.get("MEDINFER_DICOM_CORPUS", ROOT.parent / "shared" / "dicom-corpus"))
ALLOW = json.loads((pathlib.Path(__file__).parent / "differential_allowlist.json").read_text())


def corpus_files():
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [CORPUS / r["file"] for r in rows if r["has_pixel_data"] == "yes" and r["malformed"] != "yes"]


def generated_files(root):
    out = []
    for codec, bits in fac.CODEC_BITS.items():
        src = fac.pattern(24, 20, bits, seed=11)
        ba = 8 if bits == 8 else 16
        cs = fac.codestream(codec, src, bits)
        out.append(fac.write_encapsulated(root / f"gen_{codec}.dcm", 24, 20, ba, bits, fac.SYNTAX[codec], [cs]))
    for name, syntax in (("explicit_le", "1.2.840.10008.1.2.1"), ("implicit_le", "1.2.840.10008.1.2")):
        out.append(fac.write_native(root / f"gen_{name}.dcm", fac.pattern(24, 20, 12, seed=2), bits_stored=12,
                                    syntax=syntax))
    out.append(fac.write_native(root / "gen_rgb.dcm", np.stack([fac.pattern(8, 6, 8, seed=k) for k in range(3)], -1)))
    return out


def ours(path):
    stored, _ = medinfer.dicom.read_stored_pixels(str(path))
    return stored


PEER = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    out, peer, files = sys.argv[1], sys.argv[2], sys.argv[3:]

    def with_pydicom(path):
        import pydicom
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return arr.reshape(frames, int(ds.Rows), int(ds.Columns), int(getattr(ds, "SamplesPerPixel", 1)))

    def with_gdcm(path):
        import gdcm
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        if not reader.Read():
            raise RuntimeError("gdcm cannot read")
        image = reader.GetImage()
        pf = image.GetPixelFormat()
        dims = image.GetDimensions()
        frames = dims[2] if len(dims) > 2 else 1
        dtype = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16, (32, 0): np.uint32,
                 (32, 1): np.int32}[(pf.GetBitsAllocated(), pf.GetPixelRepresentation())]
        buf = image.GetBuffer()
        raw = buf.encode("latin-1", "surrogateescape") if isinstance(buf, str) else bytes(buf)
        return np.frombuffer(raw, dtype=dtype).reshape(frames, dims[1], dims[0], pf.GetSamplesPerPixel())

    decode = with_gdcm if peer == "gdcm" else with_pydicom
    for i, path in enumerate(files):
        print("start", i, flush=True)
        try:
            np.save(f"{out}/{peer}_{i}.npy", decode(path))
        except Exception:
            pass
""")


def peer_decode(peer, files, out):
    """{index: array} for the files `peer` decodes. Each peer runs in child processes (GDCM aborts
    the process on some files): a crash skips that file and the rest carry on."""
    runner = PEER
    arrays, start = {}, 0
    while start < len(files):
        proc = subprocess.run([sys.executable, "-c", runner, str(out), peer, *map(str, files[start:])],
                              capture_output=True, text=True, timeout=900)
        started = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("start ")]
        for k in range(len(files) - start):
            npy = pathlib.Path(out) / f"{peer}_{k}.npy"
            if npy.exists():
                arrays[start + k] = np.load(npy)
                npy.unlink()
        if proc.returncode == 0:
            break
        start += (started[-1] + 1) if started else 1  # skip the file it died on
    return arrays


def compare(a, b):
    """None when equal, else a short description."""
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    d = np.abs(a.astype(np.int64) - b.astype(np.int64)) if a.dtype.kind in "iu" and b.dtype.kind in "iu" else \
        np.abs(a.astype(np.float64) - b.astype(np.float64))
    if not d.any():
        return None
    return f"{int(np.count_nonzero(d))} of {d.size} values differ (max {d.max()})"


@pytest.fixture(scope="module")
def disagreements(tmp_path_factory):
    root = tmp_path_factory.mktemp("differential")
    files = corpus_files() + (generated_files(root) if fac.have_tools() else [])
    peers = {label: peer_decode(label, files, root) for label in ("gdcm", "pydicom")}
    found, checked = {}, 0
    for index, path in enumerate(files):
        name = os.path.relpath(path, CORPUS) if str(path).startswith(str(CORPUS)) else "generated/" + path.name
        try:
            mine = ours(path)
        except medinfer.MedinferError:
            continue  # refused: the corpus test says whether that is right
        for label, arrays in peers.items():
            if index not in arrays:
                continue  # the peer cannot decode it: nothing to compare
            checked += 1
            problem = compare(mine, arrays[index])
            if problem:
                found[f"{name} vs {label}"] = problem
    return found, checked


def test_medinfer_agrees_with_gdcm_and_pydicom_or_the_allowlist_says_why(disagreements):
    found, checked = disagreements
    assert checked > 0
    unexplained = {k: v for k, v in found.items() if k not in ALLOW}
    assert not unexplained, "\n".join(f"{k}: {v}" for k, v in sorted(unexplained.items()))


def test_the_allowlist_has_no_stale_entries(disagreements):
    found, _ = disagreements
    if not corpus_files():
        pytest.skip("no corpus: corpus entries cannot be checked")
    stale = [k for k in ALLOW if k not in found and not k.startswith("_")]
    assert not stale, stale
