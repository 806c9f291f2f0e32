#!/usr/bin/env python3
"""The Python package against its peers, on the same files, in one run (scripts/bench_python.sh):
Pipeline.predict_many from Python (images/s, median of rounds), dicom.read_instance against
pydicom + numpy (the rescaled float32 array a hand-written script computes), and arrays going in:
Pipeline.predict / preprocess.apply on C-contiguous float32 arrays (borrowed by the library) against
the same values as a strided view (copied once at the boundary, what every array cost before
Image::borrow). Prints one JSON object."""
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
        arrays = [medinfer.dicom.read_instance(f)[0] for f in files]
        # The same values in rows padded apart (a strided view): the binding copies these once, row by
        # row, as the library's Image::from_buffer copied every array before Image::borrow.
        padded = [np.pad(a, ((0, 0), (0, 16)))[:, : a.shape[1]] for a in arrays]
        spec = p.package.manifest["preprocessing"]
        predict_borrowed = rate(lambda: [p.predict(a) for a in arrays], len(arrays), args.rounds)
        predict_copied = rate(lambda: [p.predict(a) for a in padded], len(arrays), args.rounds)
        apply_borrowed = rate(lambda: [medinfer.preprocess.apply(spec, a) for a in arrays], len(arrays), args.rounds)
        apply_copied = rate(lambda: [medinfer.preprocess.apply(spec, a) for a in padded], len(arrays), args.rounds)
        assert p.predict(arrays[0]).probability == p.predict(padded[0]).probability
    ours = rate(lambda: [medinfer.dicom.read_instance(f) for f in files], len(files), args.rounds)
    peer = rate(lambda: [pydicom_read(f) for f in files], len(files), args.rounds)
    a, _ = medinfer.dicom.read_instance(files[0])
    assert np.allclose(a, pydicom_read(files[0])), "the two readers disagree"
    print(json.dumps({"python_predict_many_images_per_s": round(many, 1), "read_instance_per_s": round(ours, 1),
                      "pydicom_numpy_per_s": round(peer, 1), "predict_array_borrowed_per_s": round(predict_borrowed, 1),
                      "predict_array_copied_per_s": round(predict_copied, 1),
                      "apply_array_borrowed_per_s": round(apply_borrowed, 1),
                      "apply_array_copied_per_s": round(apply_copied, 1), "images": len(files)}))


if __name__ == "__main__":
    main()
