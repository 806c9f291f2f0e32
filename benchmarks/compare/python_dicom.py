#!/usr/bin/python3
"""The peer for DICOM decoding: pydicom + numpy, the way people read DICOM in Python today.

Per file of DIR/syntaxes: ms per slice for pydicom.dcmread + ds.pixel_array (pydicom picks its best
available handler: numpy, RLE, GDCM or Pillow; the one used is reported), and for a plain read of
the file's bytes. For DIR/series: read every file, sort by ImagePositionPatient along the slice
normal, stack and rescale to float32 (one thread, as scripts do). Prints one JSON object.

    /usr/bin/python3 benchmarks/compare/python_dicom.py --data DIR [--seconds S]
"""
import argparse
import glob
import json
import os
import time

import cv2
import numpy as np
import pydicom
from scipy import ndimage


def timed(fn, seconds):
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return 1000.0 * elapsed / n


def raw(path):
    with open(path, "rb") as fh:
        return fh.read()


def series_volume(files):
    slices = [pydicom.dcmread(f) for f in files]
    o = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    return np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                     for d in slices])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    out = {"peer": f"pydicom {pydicom.__version__} + numpy {np.__version__}", "syntaxes": {}}
    for path in sorted(glob.glob(os.path.join(args.data, "syntaxes", "*.dcm"))):
        name = os.path.splitext(os.path.basename(path))[0]
        entry = {"raw_read_ms": timed(lambda: raw(path), args.seconds)}
        try:
            ds = pydicom.dcmread(path)
            ds.pixel_array  # noqa: B018 (decodes; fails when no handler can)
            ts = ds.file_meta.TransferSyntaxUID
            entry["handler"] = next((h.HANDLER_NAME for h in pydicom.config.pixel_data_handlers
                                     if h.is_available() and h.supports_transfer_syntax(ts)), None)
            entry["pydicom_ms"] = timed(lambda: pydicom.dcmread(path).pixel_array, args.seconds)
        except Exception as e:  # a syntax pydicom cannot decode here: reported, not timed
            entry["pydicom_error"] = f"{type(e).__name__}: {str(e)[:120]}"
        out["syntaxes"][name] = entry
    files = sorted(glob.glob(os.path.join(args.data, "series", "*.dcm")))
    out["series_slices"] = len(files)
    out["series_pydicom_ms"] = timed(lambda: series_volume(files), args.seconds)
    # Issue 4's 3D spec on that volume (0.5 x 0.5 x 2 mm): window, 1.5 mm isotropic, 128^3, normalise.
    vol = series_volume(files)
    spacing = (2.0, 0.5, 0.5)  # (z, y, x) as numpy indexes it

    def scipy_spec():
        x = np.clip((vol - (40.0 - 200.0)) / 400.0, 0.0, 1.0).astype(np.float32)
        x = ndimage.zoom(x, [s / 1.5 for s in spacing], order=1, grid_mode=True, mode="nearest")
        x = ndimage.zoom(x, [128 / n for n in x.shape], order=1, grid_mode=True, mode="nearest")
        return (x - 0.5) / 0.25

    def opencv_spec():
        x = np.clip((vol - (40.0 - 200.0)) / 400.0, 0.0, 1.0).astype(np.float32)
        ny, nx = round(x.shape[1] * spacing[1] / 1.5), round(x.shape[2] * spacing[2] / 1.5)
        x = np.stack([cv2.resize(s, (nx, ny), interpolation=cv2.INTER_AREA) for s in x])  # box in-plane
        nz = round(x.shape[0] * spacing[0] / 1.5)
        x = cv2.resize(x.reshape(x.shape[0], -1), (x.shape[1] * x.shape[2], nz), interpolation=cv2.INTER_LINEAR)
        x = x.reshape(nz, ny, nx)
        x = np.stack([cv2.resize(s, (128, 128), interpolation=cv2.INTER_LINEAR) for s in x])
        x = cv2.resize(x.reshape(nz, -1), (128 * 128, 128), interpolation=cv2.INTER_LINEAR).reshape(128, 128, 128)
        return (x - 0.5) / 0.25

    cv2.setNumThreads(2)
    out["volume_preprocess_scipy_ms"] = timed(scipy_spec, args.seconds)
    out["volume_preprocess_opencv_ms"] = timed(opencv_spec, args.seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
