#!/usr/bin/python3
"""The researcher's peer for many images: pydicom + numpy + cv2 + torch, in batches.

Each file: pydicom read -> HU (numpy) -> the package's window (numpy) -> cv2.resize INTER_AREA to the
input size -> normalise; every --batch images one TorchScript forward (Python torch, frozen and
optimised like the SDK's), then the package's temperature calibration. Prints one JSON line with the
median images/s of --rounds rounds over the files.

    /usr/bin/python3 benchmarks/compare/python_batch_pipeline.py --model DIR --files DIR [--batch 8] [--rounds 3]
"""
import argparse
import glob
import json
import os
import statistics
import time

import cv2
import numpy as np
import pydicom
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=0)
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.model, "manifest.json")))
    steps = {s["step"]: s for s in manifest["preprocessing"]}
    window, resize, norm = steps["window"], steps["resize"], steps["normalize"]
    lo, width = window["center"] - window["width"] / 2.0, window["width"]
    size = (resize["width"], resize["height"])
    temperature = manifest["calibration"]["temperature"]
    model = torch.jit.load(os.path.join(args.model, "model.pt")).eval()
    model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    files = sorted(glob.glob(os.path.join(args.files, "*.dcm")))
    if args.images:
        files = files[:args.images]

    def run():
        probabilities, batch = [], []

        def flush():
            with torch.inference_mode():
                logits = model(torch.from_numpy(np.stack(batch)[:, None]))[:, 0].numpy()
            probabilities.extend(1.0 / (1.0 + np.exp(-logits / temperature)))
            batch.clear()

        for f in files:
            ds = pydicom.dcmread(f)
            hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            x = np.clip((hu - lo) / width, 0.0, 1.0)
            x = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
            batch.append(((x - norm["mean"]) / norm["std"]).astype(np.float32))
            if len(batch) == args.batch:
                flush()
        if batch:
            flush()
        return len(probabilities)

    run()  # warm-up
    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    print(json.dumps({"peer": "pydicom+numpy+cv2+torch", "batch": args.batch, "torch_threads": torch.get_num_threads(),
                      "images_per_s": statistics.median(rates)}))


if __name__ == "__main__":
    main()
