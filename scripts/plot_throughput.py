#!/usr/bin/python3
"""Draws images/s against batch size, one line per worker count, one panel per model, from the JSON
objects medinfer_throughput_benchmark --grid prints (drawn with OpenCV: no plotting library needed).

    /usr/bin/python3 scripts/plot_throughput.py --out FILE.png NAME=RESULT.json [NAME=RESULT.json ...]
"""
import argparse
import json
import re

import cv2
import numpy as np

COLOURS = [(200, 90, 30), (40, 140, 40), (30, 30, 200), (150, 40, 150), (0, 150, 200)]


def panel(name, figures, w=680, h=400):
    img = np.full((h, w, 3), 255, np.uint8)
    grid = {}
    for key, value in figures.items():
        m = re.fullmatch(r"many_w(\d+)_b(\d+)", key)
        if m:
            grid.setdefault(int(m.group(1)), {})[int(m.group(2))] = value
    batches = sorted({b for row in grid.values() for b in row})
    top = max([v for row in grid.values() for v in row.values()] + [figures.get("bare_bound_2x8", 0)]) * 1.1
    left, right, up, down = 70, 140, 40, 50  # the legend sits in the right margin
    def xy(i, v):
        x = left + (w - left - right) * (i / max(1, len(batches) - 1))
        y = h - down - (h - up - down) * (v / top)
        return int(x), int(y)
    cv2.rectangle(img, (left, up), (w - right, h - down), (0, 0, 0), 1)
    for k in range(6):
        v = top * k / 5
        _, y = xy(0, v)
        cv2.line(img, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{v:.0f}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, b in enumerate(batches):
        x, _ = xy(i, 0)
        cv2.putText(img, str(b), (x - 5, h - down + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "batch size", (w // 2 - 40, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{name}: images/s (predict_many)", (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    for n, (workers, row) in enumerate(sorted(grid.items())):
        colour = COLOURS[n % len(COLOURS)]
        pts = [xy(i, row[b]) for i, b in enumerate(batches) if b in row]
        for a, c in zip(pts, pts[1:]):
            cv2.line(img, a, c, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
        cv2.putText(img, f"{workers} worker{'s' if workers > 1 else ''}", (w - right + 12, up + 18 + 16 * n),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    for key, label, colour in (("bare_bound_2x8", "model alone, 2 threads", (120, 120, 120)),
                               ("one_by_one", "predict() one by one", (0, 0, 0))):
        if key in figures:
            _, y = xy(0, figures[key])
            for x in range(left, w - right, 12):
                cv2.line(img, (x, y), (min(x + 6, w - right), y), colour, 1)
            cv2.putText(img, label, (left + 6, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return img


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("results", nargs="+", help="NAME=FILE: a model's name and its benchmark JSON")
    args = ap.parse_args()
    panels = []
    for item in args.results:
        name, path = item.split("=", 1)
        panels.append(panel(name, json.load(open(path))))
    cv2.imwrite(args.out, np.hstack(panels))


if __name__ == "__main__":
    main()
