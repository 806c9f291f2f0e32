#!/usr/bin/python3
"""Writes what the throughput benchmark runs on (scripts/bench_throughput.sh):

  OUT/small      a small CNN package (about 0.09 GFLOP per 224x224 image)
  OUT/resnet18   a ResNet-18-class package (about 3.5 GFLOP per image; BasicBlocks [2, 2, 2, 2])
  OUT/slices     N synthetic 512x512 CT slices (Explicit VR Little Endian, int16)
  OUT/series     one series of S such slices (positions along z, one Series Instance UID)

Both packages take [1, 1, 224, 224]: window 40/400, area resize to 224, normalise. The weights are
seeded random, not trained: the benchmark measures speed, and the packages exist for nothing else.

    /usr/bin/python3 benchmarks/compare/make_throughput_data.py --out DIR [--slices N] [--series S]
"""
import argparse
import hashlib
import json
import os
import pathlib
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import make_sample_study  # noqa: E402


class SmallCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        chans = [1, 16, 32, 64, 64]
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(4)])
        self.fc = torch.nn.Linear(64, 1)

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Block(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(cout)
        self.c2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(64),
                                        torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.layers = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(512, 1)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def write_package(out: pathlib.Path, name: str, model: torch.nn.Module):
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model.eval()).save(str(out / "model.pt"))
    demo = json.loads((ROOT / "models" / "demo" / "manifest.json").read_text())
    risk = {k: v for k, v in demo["risk"].items() if k not in ("operating_point", "conformal")}
    risk["quality_gate"] = {"modalities": ["CT"]}
    manifest = {
        "format_version": 1, "name": name, "version": "0.1.0",
        "description": f"Benchmark model ({name}), seeded random weights, not trained.",
        "intended_use": "Benchmarking the medinfer SDK only. Not trained; not for clinical use.",
        "task": "binary", "labels": ["finding"],
        "model": {"file": "model.pt", "format": "torchscript"},
        "input": {"shape": [1, 1, 224, 224], "dtype": "float32"},
        "preprocessing": [{"step": "window", "center": 40.0, "width": 400.0},
                          {"step": "resize", "width": 224, "height": 224, "interpolation": "area"},
                          {"step": "normalize", "mean": 0.25, "std": 0.25}],
        "output": {"kind": "logit", "count": 1},
        "calibration": {"method": "temperature", "temperature": 1.0},
        "risk": risk,
        "series": {"aggregation": "top_k_mean", "k": 5, "evidence_slices": 3},
        "files": {"model.pt": hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def ct_slice(rng, size=512):
    """A CT-like slice in HU: a body ellipse of soft tissue with noise, air around it."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    body = ((xx - size / 2) / (0.42 * size)) ** 2 + ((yy - size / 2) / (0.34 * size)) ** 2 < 1.0
    hu = np.where(body, 40.0, -1000.0).astype(np.float32)
    return hu + rng.normal(0.0, 25.0, (size, size)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--series", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(15)
    write_package(args.out / "small", "bench-small-cnn", SmallCnn())
    write_package(args.out / "resnet18", "bench-resnet18", ResNet18())
    rng = np.random.default_rng(15)
    study = "1.2.826.0.1.3680043.8.498.15"
    for folder, count, series_uid in (("slices", args.slices, None), ("series", args.series, study + ".1")):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            # Separate slices: one series each (as a folder of unrelated images is); the series: one.
            uid = series_uid or f"{study}.2.{i + 1}"
            make_sample_study.write_ct(str(args.out / folder / f"{i:04d}.dcm"), ct_slice(rng), i, study, uid, 15)
    print(json.dumps({"out": str(args.out), "slices": args.slices, "series": args.series}))


if __name__ == "__main__":
    main()
