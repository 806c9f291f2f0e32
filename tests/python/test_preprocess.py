"""Every 2-D preprocessing step against an independent numpy / scipy / OpenCV-python reference.

Linear operations within 1e-4 of the output range; crop, pad, flips and channel operations bit-exact.
"""
import json

import cv2
import numpy as np
import pytest

import medinfer


def image(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(40, 300, (h, w))).astype(np.float32)


def run(steps, x, spacing=(1.0, 1.0)):
    return medinfer.preprocess.apply(json.dumps(steps), x, spacing)


def close(a, b):
    span = float(np.max(b) - np.min(b)) or 1.0
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= 1e-4 * span


def test_fixed_window():
    x = image()
    got = run([{"step": "window", "center": 40, "width": 400}], x)[0, 0]
    assert close(got, np.clip((x - (40 - 200)) / 400, 0, 1))


def test_percentile_window_matches_numpy_percentile():
    x = image(seed=1)
    got = run([{"step": "window", "percentiles": [2, 98]}], x)[0, 0]
    lo, hi = np.percentile(x, [2, 98])
    assert close(got, np.clip((x - lo) / (hi - lo), 0, 1))


def test_clip():
    x = image(seed=2)
    assert close(run([{"step": "clip", "min": -100, "max": 200}], x)[0, 0], np.clip(x, -100, 200))


@pytest.mark.parametrize("interp,flag", [("area", cv2.INTER_AREA), ("linear", cv2.INTER_LINEAR),
                                         ("nearest", cv2.INTER_NEAREST_EXACT), ("cubic", cv2.INTER_CUBIC)])
def test_resize_stretch(interp, flag):
    x = image(seed=3)
    got = run([{"step": "resize", "width": 50, "height": 40, "interpolation": interp}], x)[0, 0]
    assert close(got, cv2.resize(x, (50, 40), interpolation=flag))


def test_area_resize_by_integer_factor_is_the_block_mean():
    x = image(seed=4)
    got = run([{"step": "resize", "width": 32, "height": 24}], x)[0, 0]
    assert close(got, x.reshape(24, 4, 32, 4).mean(axis=(1, 3)))


def reference_crop_or_pad(x, w, h, pad):
    out = np.full((h, w), pad, np.float32)
    sy, sx = max(0, (x.shape[0] - h) // 2), max(0, (x.shape[1] - w) // 2)
    dy, dx = max(0, (h - x.shape[0]) // 2), max(0, (w - x.shape[1]) // 2)
    ch, cw = min(h, x.shape[0]), min(w, x.shape[1])
    out[dy:dy + ch, dx:dx + cw] = x[sy:sy + ch, sx:sx + cw]
    return out


def test_resize_keep_aspect_and_pad():
    x = image(h=60, w=120, seed=5)
    got = run([{"step": "resize", "width": 64, "height": 64, "interpolation": "linear", "mode": "keep_aspect_pad",
                "pad_value": -1}], x)[0, 0]
    scaled = cv2.resize(x, (64, 32), interpolation=cv2.INTER_LINEAR)
    assert close(got, reference_crop_or_pad(scaled, 64, 64, -1.0))


@pytest.mark.parametrize("w,h", [(64, 50), (200, 130), (64, 130), (129, 95)])
def test_crop_or_pad_is_bit_exact(w, h):
    x = image(seed=6)
    got = run([{"step": "crop_or_pad", "width": w, "height": h, "pad_value": 7.5}], x)[0, 0]
    assert np.array_equal(got, reference_crop_or_pad(x, w, h, 7.5))


def test_flips_are_bit_exact():
    x = image(seed=7)
    assert np.array_equal(run([{"step": "flip", "axis": "horizontal"}], x)[0, 0], x[:, ::-1])
    assert np.array_equal(run([{"step": "flip", "axis": "vertical"}], x)[0, 0], x[::-1, :])


def test_replicated_channels_are_bit_exact():
    x = image(seed=8)
    got = run([{"step": "channels", "replicate": 3}], x)
    assert got.shape == (1, 3) + x.shape
    for c in range(3):
        assert np.array_equal(got[0, c], x)


def test_normalize_modes():
    x = image(seed=9)
    assert close(run([{"step": "normalize", "mean": 10, "std": 50}], x)[0, 0], (x - 10) / 50)
    xd = x.astype(np.float64)
    assert close(run([{"step": "normalize", "mode": "zscore"}], x)[0, 0], ((xd - xd.mean()) / xd.std()).astype(np.float32))
    assert close(run([{"step": "normalize", "mode": "minmax"}], x)[0, 0], (x - x.min()) / (x.max() - x.min()))
    assert np.array_equal(run([{"step": "normalize", "mode": "zscore"}], np.full((4, 4), 3.0, np.float32))[0, 0],
                          np.zeros((4, 4), np.float32))


def test_resample_to_a_target_spacing():
    x = image(h=90, w=120, seed=10)
    # 0.5 mm -> 1.25 mm: shrinking, antialiased (area)
    got = run([{"step": "resample", "spacing_mm": [1.25, 1.25]}], x, spacing=(0.5, 0.5))[0, 0]
    assert close(got, cv2.resize(x, (48, 36), interpolation=cv2.INTER_AREA))
    # 2 mm -> 0.8 mm: enlarging, linear
    got = run([{"step": "resample", "spacing_mm": [0.8, 1.0], "interpolation": "linear"}], x, spacing=(2.0, 2.0))[0, 0]
    assert close(got, cv2.resize(x, (300, 180), interpolation=cv2.INTER_LINEAR))
    got = run([{"step": "resample", "spacing_mm": [1.25, 1.25], "interpolation": "nearest", "antialias": False}], x,
              spacing=(0.5, 0.5))[0, 0]
    assert close(got, cv2.resize(x, (48, 36), interpolation=cv2.INTER_NEAREST_EXACT))


def test_a_whole_spec_in_order():
    x = image(h=128, w=128, seed=11)
    steps = [{"step": "window", "center": 40, "width": 400}, {"step": "flip", "axis": "horizontal"},
             {"step": "crop_or_pad", "width": 112, "height": 112}, {"step": "resize", "width": 56, "height": 56},
             {"step": "normalize", "mode": "zscore"}, {"step": "channels", "replicate": 3}]
    ref = np.clip((x - (40 - 200)) / 400, 0, 1)[:, ::-1]
    ref = reference_crop_or_pad(np.ascontiguousarray(ref), 112, 112, 0.0)
    ref = ref.reshape(56, 2, 56, 2).mean(axis=(1, 3))
    ref = (ref - ref.astype(np.float64).mean()) / ref.astype(np.float64).std()
    got = run(steps, x)
    assert got.shape == (1, 3, 56, 56)
    assert close(got[0, 0], ref.astype(np.float32))


@pytest.mark.parametrize("steps,expected", [
    ([{"step": "window", "percentiles": [99, 1]}], "preprocessing[0].percentiles"),
    ([{"step": "clip", "min": 5, "max": 1}], "preprocessing[0].max"),
    ([{"step": "resize", "width": 4, "height": 4, "mode": "fit"}], "preprocessing[0].mode"),
    ([{"step": "resample", "spacing_mm": [0, 1]}], "preprocessing[0].spacing_mm"),
    ([{"step": "resample", "spacing_mm": 1}], "preprocessing[0].spacing_mm"),
    ([{"step": "resample", "spacing_mm": [1, 1], "antialias": "yes"}], "preprocessing[0].antialias"),
    ([{"step": "crop_or_pad", "width": 0, "height": 4}], "preprocessing[0].width"),
    ([{"step": "flip", "axis": "diagonal"}], "preprocessing[0].axis"),
    ([{"step": "normalize", "mode": "zscore", "mean": 1}], "preprocessing[0]: mode 'zscore'"),
    ([{"step": "normalize", "mode": "robust"}], "preprocessing[0].mode"),
    ([{"step": "channels", "replicate": 0}], "preprocessing[0].replicate"),
    ([{"step": "clip", "min": 0, "max": 1}, {"step": "sharpen"}], "preprocessing[1].step"),
])
def test_every_validation_error_names_the_step_and_field(steps, expected):
    with pytest.raises(medinfer.InvalidArgumentError) as e:
        run(steps, image())
    assert expected in str(e.value)


def test_preprocess_rejects_non_2d_input():
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.preprocess.apply("[]", np.zeros((2, 3, 4), np.float32))


def test_rgb_images_per_channel_normalize_and_color_steps():
    rgb = np.random.default_rng(3).uniform(0, 255, size=(40, 50, 3)).astype(np.float32)
    mean, std = [120.0, 110.0, 100.0], [50.0, 60.0, 70.0]
    out = medinfer.preprocess.apply(json.dumps([{"step": "normalize", "mean": mean, "std": std}]), rgb)
    assert out.shape == (1, 3, 40, 50)
    ref = ((rgb - np.array(mean)) / np.array(std)).transpose(2, 0, 1)[None]  # NCHW, channel planes in order
    assert close(out, ref)
    gray = medinfer.preprocess.apply(json.dumps([{"step": "color", "to": "gray"}]), rgb)
    assert gray.shape == (1, 1, 40, 50)
    assert close(gray[0, 0], rgb @ np.array([0.299, 0.587, 0.114]))
    as_rgb = medinfer.preprocess.apply(json.dumps([{"step": "color", "to": "rgb"}]), rgb[:, :, 0])
    assert as_rgb.shape == (1, 3, 40, 50)
    np.testing.assert_array_equal(as_rgb[0, 2], rgb[:, :, 0])
    resized = medinfer.preprocess.apply(json.dumps([{"step": "resize", "width": 25, "height": 20}]), rgb)
    assert close(resized[0].transpose(1, 2, 0), rgb.reshape(20, 2, 25, 2, 3).mean(axis=(1, 3)))


@pytest.mark.parametrize("steps, expected", [
    ([{"step": "window", "center": 0, "width": 1}, {"step": "frame", "index": 1}], "preprocessing[1].step"),
    ([{"step": "frame", "index": -1}], "preprocessing[0].index"),
    ([{"step": "modality_lut"}], "preprocessing[0].apply"),
    ([{"step": "color", "to": "cmyk"}], "preprocessing[0].to"),
    ([{"step": "normalize", "mean": [1, 2, 3], "std": [1, 2]}], "preprocessing[0].std"),
    ([{"step": "normalize", "mean": [1, 2, 3], "std": [1, 0, 2]}], "preprocessing[0].std"),
])
def test_input_color_and_per_channel_validation_errors(steps, expected):
    with pytest.raises(medinfer.InvalidArgumentError) as e:
        medinfer.preprocess.apply(json.dumps(steps), image())
    assert expected in str(e.value)


def test_per_channel_normalize_needs_matching_channels():
    with pytest.raises(medinfer.InvalidArgumentError, match="3 per-channel values but the image has 1"):
        medinfer.preprocess.apply(json.dumps([{"step": "normalize", "mean": [1, 2, 3], "std": [1, 1, 1]}]), image())


def test_rescale_maps_a_range_linearly_and_clips():
    x = image()
    steps = [{"step": "rescale", "in_range": [-200, 600], "out_range": [-1, 1]}]
    ref = np.clip((x.astype(np.float64) + 200) / 800 * 2 - 1, -1, 1)
    assert close(run(steps, x)[0, 0], ref)
    steps[0]["clip"] = False
    assert close(run(steps, x)[0, 0], (x.astype(np.float64) + 200) / 800 * 2 - 1)
    vol = np.stack([x, x])
    assert close(medinfer.preprocess.apply_volume(json.dumps(steps), vol)[0, 0, 1], (x.astype(np.float64) + 200) / 800 * 2 - 1)
    with pytest.raises(medinfer.InvalidArgumentError, match=r"preprocessing\[0\].in_range"):
        run([{"step": "rescale", "in_range": [5, 5], "out_range": [0, 1]}], x)
