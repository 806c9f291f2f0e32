"""Synthetic CT-like slices for the demo model (NOT clinical data).

One generator serves training (train_demo_model.py) and the sample study (make_sample_study.py),
so the DICOM files the demo runs on come from the same distribution the model was trained on.

Each slice is 256x256, in Hounsfield units: air (-1000) around an elliptical body of soft tissue
(~40 HU) with fat patches (~-100 HU), a smooth low-frequency texture and Gaussian noise. A positive
slice has one round hyperdense lesion (radius 3-14 px, +20..+90 HU over tissue, soft edge).
"""
import numpy as np

SIZE = 256
AIR_HU = -1000.0
TISSUE_HU = 40.0
FAT_HU = -100.0


def _smooth_field(rng, size, scale):
    """Low-frequency texture: coarse Gaussian noise upsampled bilinearly."""
    coarse = rng.normal(0.0, 1.0, (size // 32 + 2, size // 32 + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, size)
    xs = np.linspace(0, coarse.shape[1] - 1.001, size)
    y0 = ys.astype(int)
    x0 = xs.astype(int)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    c00 = coarse[np.ix_(y0, x0)]
    c01 = coarse[np.ix_(y0, x0 + 1)]
    c10 = coarse[np.ix_(y0 + 1, x0)]
    c11 = coarse[np.ix_(y0 + 1, x0 + 1)]
    return scale * ((1 - fy) * ((1 - fx) * c00 + fx * c01) + fy * ((1 - fx) * c10 + fx * c11))


def make_slice(rng, positive, lesion_radius=None, lesion_contrast=None):
    """Returns (hu: float32 [256,256], info: dict). Deterministic for a given rng state."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = SIZE / 2 + rng.uniform(-8, 8), SIZE / 2 + rng.uniform(-8, 8)
    ry, rx = rng.uniform(85, 110), rng.uniform(100, 122)
    body = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    img = np.full((SIZE, SIZE), AIR_HU, np.float32)
    img[body] = TISSUE_HU
    for _ in range(rng.integers(2, 6)):  # fat patches
        fy, fx = rng.uniform(cy - ry * 0.6, cy + ry * 0.6), rng.uniform(cx - rx * 0.6, cx + rx * 0.6)
        fr = rng.uniform(8, 25)
        fat = ((yy - fy) ** 2 + (xx - fx) ** 2 <= fr * fr) & body
        img[fat] = FAT_HU
    img += np.where(body, _smooth_field(rng, SIZE, 12.0), 0.0).astype(np.float32)
    info = {"positive": bool(positive), "radius": 0.0, "contrast": 0.0, "cy": 0.0, "cx": 0.0}
    if positive:
        r = lesion_radius if lesion_radius is not None else rng.uniform(3.0, 14.0)
        c = lesion_contrast if lesion_contrast is not None else rng.uniform(20.0, 90.0)
        # centre inside the body, away from its edge
        while True:
            ly, lx = rng.uniform(cy - ry * 0.7, cy + ry * 0.7), rng.uniform(cx - rx * 0.7, cx + rx * 0.7)
            if ((ly - cy) / ry) ** 2 + ((lx - cx) / rx) ** 2 <= 0.5:
                break
        d = np.sqrt((yy - ly) ** 2 + (xx - lx) ** 2)
        edge = np.clip(r + 1.0 - d, 0.0, 1.0)  # 1 inside, linear 1-px falloff
        img += (c * edge).astype(np.float32)
        info.update(radius=float(r), contrast=float(c), cy=float(ly), cx=float(lx))
    img += rng.normal(0.0, 18.0, img.shape).astype(np.float32)
    return np.round(img).astype(np.float32), info


def make_dataset(seed, n):
    """n slices, half positive (shuffled). Returns (hu [n,256,256] float32, labels [n] int64)."""
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)], np.int64)
    rng.shuffle(labels)
    imgs = np.empty((n, SIZE, SIZE), np.float32)
    for i in range(n):
        imgs[i], _ = make_slice(rng, labels[i] == 1)
    return imgs, labels
