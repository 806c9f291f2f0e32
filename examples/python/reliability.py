#!/usr/bin/env python3
"""Fits a calibrator on a labelled folder and saves its reliability diagram.

    reliability.py --model models/demo --labels study/truth.csv --method beta --out reliability.png

--labels is a CSV with columns `file` (relative to the CSV's folder, or absolute) and `label` (0/1).
The model's raw scores (logits) come from Pipeline.predict_many; the calibrator is
medinfer.calibration.Calibrator.fit; the metrics before (the package's own calibration) and after are
medinfer.calibration.compute_metrics; the diagram (matplotlib, headless) shows each reliability bin's
observed frequency against its mean predicted probability, with the bin counts below. Prints the
fitted calibrator's JSON (what a manifest's "calibration" takes) and the ECE / Brier before and after.
Fitting and judging on the same files flatters the calibrator: use a held-out folder for a claim.
Exit status: 0 written, 1 a file could not be scored, 2 usage.
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import sys
from typing import List, Optional

import matplotlib  # type: ignore[import]  # Debian's matplotlib ships no stubs

matplotlib.use("Agg")  # no display: write the file
import matplotlib.pyplot as plt  # type: ignore[import]  # noqa: E402

import medinfer  # noqa: E402


def read_labels(path: pathlib.Path) -> tuple[List[str], List[int]]:
    files: List[str] = []
    labels: List[int] = []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            if row.get("label") not in ("0", "1"):
                raise SystemExit(f"{path}:{i}: label must be 0 or 1, not {row.get('label')!r}")
            f = pathlib.Path(row["file"])
            files.append(str(f if f.is_absolute() else path.parent / f))
            labels.append(int(row["label"]))
    if not files:
        raise SystemExit(f"{path}: no rows")
    return files, labels


def plot(before: medinfer.calibration.Metrics, after: medinfer.calibration.Metrics, method: str,
         out: pathlib.Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    for metrics, name, style in ((before, "package", "o-"), (after, method, "s-")):
        bins = [b for b in metrics.bins if b.count > 0]
        top.plot([b.mean_probability for b in bins], [b.fraction_positive for b in bins], style,
                 label=f"{name} (ECE {metrics.ece_positive:.3f})")
    top.set_ylabel("observed frequency")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title("reliability")
    centres = [(b.lower + b.upper) / 2 for b in after.bins]
    bottom.bar(centres, [b.count for b in after.bins], width=1 / max(1, len(after.bins)), color="tab:orange")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model package directory (a binary task)")
    parser.add_argument("--labels", required=True, type=pathlib.Path, help="CSV with columns file, label")
    parser.add_argument("--method", default="beta", help="temperature | platt | isotonic | histogram | beta")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--out", required=True, type=pathlib.Path, help="the PNG to write")
    args = parser.parse_args(argv)
    files, labels = read_labels(args.labels)
    with medinfer.Pipeline.open(args.model) as pipeline:
        outcomes = pipeline.predict_many(files)
    failed = [(f, o) for f, o in zip(files, outcomes) if not isinstance(o, medinfer.Result)]
    for f, o in failed:
        print(f"{f}: {o}", file=sys.stderr)
    if failed:
        return 1
    results = [o for o in outcomes if isinstance(o, medinfer.Result)]
    scores = [r.raw_score for r in results]
    calibrator = medinfer.calibration.Calibrator.fit(args.method, scores, labels, args.bins)
    before = medinfer.calibration.compute_metrics([r.probability for r in results], labels, bins=args.bins)
    after = medinfer.calibration.compute_metrics(calibrator.apply_many(scores), labels, bins=args.bins)
    plot(before, after, args.method, args.out)
    print(calibrator.to_json())
    print(f"ECE {before.ece_positive:.4f} -> {after.ece_positive:.4f}, Brier {before.brier:.4f} -> "
          f"{after.brier:.4f} on {len(results)} files; diagram {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
