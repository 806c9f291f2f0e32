"""The demo model's preprocessing in numpy: window -> area resize -> normalise.

Used by training, by the Python parity tests and by the Python peer benchmark. It is the
independent reference that medinfer's C++ preprocessing (OpenCV) is checked against.
"""
import numpy as np


def window(hu, center, width):
    lo = center - width / 2.0
    return np.clip((hu.astype(np.float64) - lo) / width, 0.0, 1.0).astype(np.float32)


def area_resize(img, out_h, out_w):
    """Exact area resize for integer downscale factors (what cv2.INTER_AREA does there)."""
    h, w = img.shape[-2:]
    if h % out_h or w % out_w:
        raise ValueError(f"reference area_resize needs integer factors, got {h}x{w} -> {out_h}x{out_w}")
    fy, fx = h // out_h, w // out_w
    shape = img.shape[:-2] + (out_h, fy, out_w, fx)
    return img.reshape(shape).astype(np.float64).mean(axis=(-3, -1)).astype(np.float32)


def normalize(img, mean, std):
    return ((img - mean) / std).astype(np.float32)


def apply_spec(hu, steps):
    """Applies the manifest's 'preprocessing' list (window/resize/normalize) to HU images [..., H, W]."""
    x = hu
    for s in steps:
        if s["step"] == "window":
            x = window(x, s["center"], s["width"])
        elif s["step"] == "resize":
            if s.get("interpolation", "area") != "area":
                raise ValueError("reference supports area interpolation only")
            x = area_resize(x, s["height"], s["width"])
        elif s["step"] == "normalize":
            x = normalize(x, s["mean"], s["std"])
        else:
            raise ValueError(f"unknown step {s['step']}")
    return x
