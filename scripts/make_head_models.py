#!/usr/bin/env python3
"""Writes two small packages with several outputs, for tests and examples of multi-output heads:
  OUT/multi-label   "demo-ct-findings": lesion, calcification, artifact (independent sigmoids)
  OUT/multi-class   "demo-ct-density":  fat, soft_tissue, bone (one softmax)
Both take the demo package's input (64x64 CT slice, the same preprocessing). The weights are seeded
random, not trained: the packages exist to check that every label's logit, calibration and risk decision
goes through the SDK exactly as Python torch and the reference formulas say, not to detect anything."""
import argparse
import hashlib
import json
import pathlib
import shutil

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Head(torch.nn.Module):
    def __init__(self, outputs: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 5, stride=2, padding=2)
        self.fc = torch.nn.Linear(6, outputs)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def write_package(out: pathlib.Path, name: str, task: str, labels, calibration, seed: int):
    torch.manual_seed(seed)
    model = Head(len(labels)).eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(out / "model.pt"))
    demo = json.loads((ROOT / "models" / "demo" / "manifest.json").read_text())
    risk = {k: v for k, v in demo["risk"].items() if k not in ("operating_point", "conformal")}
    manifest = {
        "format_version": 1,
        "name": name,
        "version": "0.1.0",
        "description": f"Synthetic {task} head with seeded random weights (not trained).",
        "intended_use": "Testing the medinfer SDK only. Not trained; not for clinical use.",
        "task": task,
        "labels": labels,
        "model": {"file": "model.pt", "format": "torchscript"},
        "input": demo["input"],
        "preprocessing": demo["preprocessing"],
        "output": {"kind": "logit", "count": len(labels)},
        "calibration": calibration,
        "risk": risk,
        "files": {"model.pt": hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    write_package(args.out / "multi-label", "demo-ct-findings", "multi-label", ["lesion", "calcification", "artifact"],
                  [{"method": "temperature", "temperature": 1.5},
                   {"method": "platt", "a": -1.2, "b": 0.1},
                   {"method": "beta", "a": 0.8, "b": 1.1, "c": -0.2}], seed=7)
    write_package(args.out / "multi-class", "demo-ct-density", "multi-class", ["fat", "soft_tissue", "bone"],
                  {"method": "temperature", "temperature": 1.3}, seed=11)


if __name__ == "__main__":
    main()
