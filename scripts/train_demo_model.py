#!/usr/bin/python3
"""Trains the demo model and writes its package to models/demo/ (manifest.json + model.pt).

    /usr/bin/python3 scripts/train_demo_model.py [--out models/demo] [--epochs 12]

Deterministic: fixed seeds, one thread. The task is synthetic (scripts/demo_data.py): is there a
round hyperdense lesion in this CT-like slice? The model is NOT a clinical model.
Prints ROC AUC and ECE (15 equal-width bins over p(positive)) on a held-out test split before and
after temperature scaling; the temperature is fitted on a separate calibration split.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402
import preprocess_reference as ref  # noqa: E402

WINDOW = {"step": "window", "center": 40.0, "width": 400.0}
RESIZE = {"step": "resize", "width": 64, "height": 64, "interpolation": "area"}


class DemoNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        c = [1, 16, 32, 64]
        layers = []
        for i in range(3):
            layers += [torch.nn.Conv2d(c[i], c[i + 1], 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(64, 1)

    def forward(self, x):
        f = self.features(x)
        f = torch.amax(f, dim=(2, 3))  # global max pool: a lesion is a local finding
        return self.head(f)


def ece(p, y, bins=15):
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models", "demo"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--train", type=int, default=3000)
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    def prep(seed, n):
        hu, y = demo_data.make_dataset(seed, n)
        return ref.apply_spec(hu, [WINDOW, RESIZE]), y

    x_tr, y_tr = prep(1, args.train)
    x_cal, y_cal = prep(2, 1000)
    x_te, y_te = prep(3, 1000)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    norm = {"step": "normalize", "mean": round(mean, 6), "std": round(std, 6)}
    f = lambda x: torch.from_numpy(ref.normalize(x, norm["mean"], norm["std"])[:, None])  # noqa: E731
    t_tr, t_cal, t_te = f(x_tr), f(x_cal), f(x_te)

    net = DemoNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    yt = torch.from_numpy(y_tr.astype(np.float32))
    g = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(t_tr), generator=g)
        total = 0.0
        for i in range(0, len(perm), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(net(t_tr[b])[:, 0], yt[b])
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        print(f"epoch {epoch + 1}/{args.epochs} train loss {total / len(perm):.4f}", flush=True)

    net.eval()
    with torch.no_grad():
        z_cal = net(t_cal)[:, 0].double().numpy()
        z_te = net(t_te)[:, 0].double().numpy()

    def nll(log_t):
        p = np.clip(sigmoid(z_cal / np.exp(log_t)), 1e-12, 1 - 1e-12)
        return -np.mean(y_cal * np.log(p) + (1 - y_cal) * np.log(1 - p))

    temperature = float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))
    p_raw, p_cal = sigmoid(z_te), sigmoid(z_te / temperature)
    metrics = {
        "test_images": int(len(y_te)),
        "auc": round(float(roc_auc_score(y_te, z_te)), 4),
        "ece_before": round(ece(p_raw, y_te), 4),
        "ece_after": round(ece(p_cal, y_te), 4),
        "temperature": round(temperature, 4),
    }
    print(f"test AUC {metrics['auc']:.4f}")
    print(f"ECE (15 bins, p(positive)) before calibration {metrics['ece_before']:.4f}, "
          f"after temperature scaling (T={temperature:.4f}) {metrics['ece_after']:.4f}")

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.pt")
    scripted = torch.jit.script(net)
    scripted.save(model_path)
    with open(model_path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    manifest = {
        "format_version": 1,
        "name": "demo-ct-lesion",
        "version": "1.0.0",
        "description": "Synthetic demo: round hyperdense lesion present in a CT-like slice?",
        "intended_use": "Demonstration of the medinfer SDK only. Trained on synthetic images. "
                        "Not a medical device; not for clinical use.",
        "task": "binary",
        "labels": ["lesion"],
        "model": {"file": "model.pt", "format": "torchscript"},
        "input": {"shape": [1, 1, 64, 64], "dtype": "float32"},
        "preprocessing": [WINDOW, RESIZE, norm],
        "output": {"kind": "logit", "count": 1},
        "calibration": {"method": "temperature", "temperature": metrics["temperature"]},
        "risk": {
            "tiers": [
                {"name": "low", "min_probability": 0.0},
                {"name": "intermediate", "min_probability": 0.2},
                {"name": "high", "min_probability": 0.6},
            ],
            "escalation_threshold": 0.85,
            "min_confidence": 0.6,
        },
        "training_metrics": metrics,
        "files": {"model.pt": digest},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    print(f"wrote {args.out}/manifest.json and model.pt (sha256 {digest})")


if __name__ == "__main__":
    main()
