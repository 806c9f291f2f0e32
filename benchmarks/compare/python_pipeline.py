#!/usr/bin/python3
"""The peer: the same job done the way people do it today, in Python.

pydicom read -> numpy modality LUT -> numpy window / area resize / normalise (the manifest's steps)
-> frozen TorchScript forward (Python torch) -> the manifest's calibration (numpy), one image at a time.
Prints images/s and ms per image as one JSON line.

    /usr/bin/python3 benchmarks/compare/python_pipeline.py --study DIR --model DIR [--seconds S]
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import pydicom
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import calibration_reference  # noqa: E402
import preprocess_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the SDK's engine runs at LibTorch's default here, which is 1
    manifest = json.load(open(os.path.join(args.model, "manifest.json")))
    model = torch.jit.load(os.path.join(args.model, "model.pt")).eval()
    model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    files = sorted(glob.glob(os.path.join(args.study, "*.dcm")))
    if not files:
        sys.exit(f"no .dcm files in {args.study}")

    def predict(path):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        x = ref.apply_spec(hu, manifest["preprocessing"])
        with torch.inference_mode():
            logit = float(model(torch.from_numpy(x[None, None]))[0, 0])
        return float(calibration_reference.apply(manifest["calibration"], logit))

    for f in files:  # warm-up
        predict(f)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        predict(files[n % len(files)])
        n += 1
    elapsed = time.perf_counter() - start
    result = {"peer": "pydicom+numpy+torch", "images": n, "images_per_s": n / elapsed,
              "ms_per_image": 1000.0 * elapsed / n}
    # Preprocessing alone, on decoded HU images: numpy (the reference) and OpenCV-python.
    hus = []
    for f in files:
        ds = pydicom.dcmread(f)
        hus.append(ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    steps = manifest["preprocessing"]

    def numpy_steps(hu):
        return ref.apply_spec(hu, steps)

    def opencv_steps(hu):
        import cv2
        x = hu
        for s in steps:
            if s["step"] == "window":
                lo = s["center"] - s["width"] / 2
                x = np.clip((x - lo) * (1.0 / s["width"]), 0, 1)
            elif s["step"] == "resize":
                x = cv2.resize(x, (s["width"], s["height"]), interpolation=cv2.INTER_AREA)
            elif s["step"] == "normalize":
                x = (x - s["mean"]) * (1.0 / s["std"])
        return x

    for name, fn in (("numpy", numpy_steps), ("opencv_python", opencv_steps)):
        try:
            fn(hus[0])
        except ImportError:
            continue
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds / 2:
            fn(hus[k % len(hus)])
            k += 1
        result[f"preprocess_{name}_images_per_s"] = k / (time.perf_counter() - t0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
