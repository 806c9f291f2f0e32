#!/usr/bin/env python3
"""The Python package against its peers, on the same files, in one run (scripts/bench_python.sh):
Pipeline.predict_many from Python (images/s, median of rounds) and dicom.read_instance against
pydicom + numpy (the rescaled float32 array a hand-written script computes). Prints one JSON object."""
import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import pydicom

import medinfer


def rate(run, count, rounds):
    run()  # warm
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - t))
    return statistics.median(rates)


def pydicom_read(path):
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.astype(np.float32)
    return pixels * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", required=True)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    files = sorted(str(p) for p in pathlib.Path(args.files).glob("*.dcm"))[: args.images]
    with medinfer.Pipeline.open(args.model) as p:
        many = rate(lambda: p.predict_many(files, workers=args.workers, batch_size=args.batch), len(files), args.rounds)
    ours = rate(lambda: [medinfer.dicom.read_instance(f) for f in files], len(files), args.rounds)
    peer = rate(lambda: [pydicom_read(f) for f in files], len(files), args.rounds)
    a, _ = medinfer.dicom.read_instance(files[0])
    assert np.allclose(a, pydicom_read(files[0])), "the two readers disagree"
    print(json.dumps({"python_predict_many_images_per_s": round(many, 1), "read_instance_per_s": round(ours, 1),
                      "pydicom_numpy_per_s": round(peer, 1), "images": len(files)}))


if __name__ == "__main__":
    main()
