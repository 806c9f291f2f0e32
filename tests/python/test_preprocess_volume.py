"""Volume preprocessing (apply_volume) and the window curves, against independent numpy/scipy references.

Linear resampling is compared with scipy.ndimage.zoom (order=1, grid_mode=True, mode='nearest': the same
half-pixel-centre mapping with clamped edges), area shrinking with exact box averages (block means for
integer factors, a cumulative-integral reference for fractional ones), nearest with numpy indexing;
crop, pad, flips and reorientation must be bit-exact; linear operations within 1e-4 of the range.
"""
import json

import numpy as np
import pytest
from scipy import ndimage

import medinfer

RNG = np.random.default_rng(7)
VOL = RNG.normal(100.0, 40.0, size=(20, 36, 40)).astype(np.float32)  # (slices, rows, columns)


def run(steps, vol=VOL, **kw):
    out = medinfer.preprocess.apply_volume(json.dumps(steps), vol, **kw)
    assert out.ndim == 5 and out.shape[0] == 1
    return out


def tol(ref):
    return 1e-4 * max(1.0, float(np.ptp(ref)))


def area_axis(x, axis, n_out):
    """Exact box average along one axis: the integral of the piecewise-constant signal over each cell."""
    n_in = x.shape[axis]
    edges = np.arange(n_out + 1) * (n_in / n_out)
    cum = np.concatenate([np.zeros_like(np.take(x, [0], axis=axis), dtype=np.float64),
                          np.cumsum(x.astype(np.float64), axis=axis)], axis=axis)

    def integral(t):  # integral from 0 to t
        i = np.minimum(np.floor(t).astype(int), n_in - 1)
        frac = t - i
        shape = [1] * x.ndim
        shape[axis] = -1
        return np.take(cum, i, axis=axis) + np.take(x.astype(np.float64), i, axis=axis) * frac.reshape(shape)

    return ((integral(edges[1:]) - integral(edges[:-1])) / (n_in / n_out)).astype(np.float32)


@pytest.mark.parametrize("size", [(25, 50, 13), (40, 36, 20), (64, 9, 31)])
def test_linear_resize_matches_scipy_zoom(size):
    w, h, d = size
    out = run([{"step": "resize", "width": w, "height": h, "depth": d, "interpolation": "linear"}])[0, 0]
    ref = ndimage.zoom(VOL, (d / 20, h / 36, w / 40), order=1, grid_mode=True, mode="nearest")
    assert out.shape == ref.shape == (d, h, w)
    np.testing.assert_allclose(out, ref, atol=tol(ref))


def test_area_resize_by_integer_factors_is_the_block_mean():
    out = run([{"step": "resize", "width": 20, "height": 18, "depth": 10}])[0, 0]  # area is the default
    ref = VOL.astype(np.float64).reshape(10, 2, 18, 2, 20, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(out, ref, atol=tol(ref))


def test_area_resize_by_fractional_factors_is_the_exact_box_average():
    out = run([{"step": "resize", "width": 15, "height": 14, "depth": 7}])[0, 0]
    ref = area_axis(area_axis(area_axis(VOL, 2, 15), 1, 14), 0, 7)
    np.testing.assert_allclose(out, ref, atol=tol(ref))


def test_nearest_resize_picks_the_centre_sample():
    out = run([{"step": "resize", "width": 17, "height": 11, "depth": 7, "interpolation": "nearest"}])[0, 0]

    def idx(n_in, n_out):
        return np.minimum(np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)

    np.testing.assert_array_equal(out, VOL[idx(20, 7)][:, idx(36, 11)][:, :, idx(40, 17)])


def test_resample_to_spacing_with_antialias_and_without():
    # (x, y, z) spacing 0.7, 0.8, 2.5 mm -> 1.4, 1.6, 1.25: x and y shrink by 2 (box), z grows (linear).
    steps = [{"step": "resample", "spacing_mm": [1.4, 1.6, 1.25]}]
    out = run(steps, spacing=(0.7, 0.8, 2.5))[0, 0]
    assert out.shape == (40, 18, 20)
    xy = VOL.astype(np.float64).reshape(20, 18, 2, 20, 2).mean(axis=(2, 4)).astype(np.float32)
    ref = ndimage.zoom(xy, (2.0, 1.0, 1.0), order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(out, ref, atol=tol(ref))
    # Without antialias, shrinking is plain linear interpolation too.
    out = run([{"step": "resample", "spacing_mm": [1.4, 1.6, 1.25], "antialias": False}], spacing=(0.7, 0.8, 2.5))[0, 0]
    ref = ndimage.zoom(VOL, (2.0, 0.5, 0.5), order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(out, ref, atol=tol(ref))
    # [x, y] only: the slices are kept.
    assert run([{"step": "resample", "spacing_mm": [1.4, 1.6]}], spacing=(0.7, 0.8, 2.5)).shape == (1, 1, 20, 18, 20)


def test_crop_pad_flip_and_reorient_are_bit_exact():
    out = run([{"step": "crop_or_pad", "width": 30, "height": 40, "depth": 11, "pad_value": -5}])[0, 0]
    ref = np.full((11, 40, 30), -5.0, np.float32)
    ref[:, 2:38, :] = VOL[4:15, :, 5:35]
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(run([{"step": "flip", "axis": "depth"}])[0, 0], VOL[::-1])
    np.testing.assert_array_equal(run([{"step": "flip", "axis": "horizontal"}])[0, 0], VOL[:, :, ::-1])
    # An axial volume in LPS reoriented to RAS: x and y flip, z stays.
    np.testing.assert_array_equal(run([{"step": "reorient", "axes": "RAS"}])[0, 0], VOL[:, ::-1, ::-1])
    # A sagittal acquisition (rows along -z, columns along +y, slices along +x) to LPS: a permutation.
    sag = (0, 1, 0, 0, 0, -1, 1, 0, 0)
    out = run([{"step": "reorient", "axes": "LPS"}], direction=sag)[0, 0]
    ref = np.transpose(VOL, (1, 2, 0))[::-1]  # out[z][y][x] = in[x slice][row = z flipped][col = y]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("function", ["linear", "dicom_linear", "linear_exact", "sigmoid"])
def test_window_functions_match_their_formulas_in_2d_and_3d(function):
    c, w = 90.0, 60.0
    x = VOL.astype(np.float64)
    ref = {
        "linear": np.clip((x - (c - w / 2)) / w, 0, 1),
        "dicom_linear": np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1),
        "linear_exact": np.clip((x - c) / w + 0.5, 0, 1),
        "sigmoid": 1 / (1 + np.exp(-4 * (x - c) / w)),
    }[function]
    steps = [{"step": "window", "center": c, "width": w, "function": function}]
    np.testing.assert_allclose(run(steps)[0, 0], ref, atol=1e-5)
    np.testing.assert_allclose(medinfer.preprocess.apply(json.dumps(steps), VOL[3])[0, 0], ref[3], atol=1e-5)


def test_window_from_file_uses_the_files_function():
    steps = [{"step": "window", "from_file": True, "center": 0, "width": 1}]
    x = VOL[0].astype(np.float64)
    sig = medinfer.preprocess.apply(json.dumps(steps), VOL[0], file_window=(100.0, 50.0, "SIGMOID"))[0, 0]
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-4 * (x - 100) / 50)), atol=1e-5)
    lin = medinfer.preprocess.apply(json.dumps(steps), VOL[0], file_window=(100.0, 50.0))[0, 0]
    np.testing.assert_allclose(lin, np.clip((x - 99.5) / 49 + 0.5, 0, 1), atol=1e-5)
    # No VOI in the file: the step's own center/width (linear).
    own = medinfer.preprocess.apply(json.dumps([{"step": "window", "from_file": True, "center": 100, "width": 50}]), VOL[0])
    np.testing.assert_allclose(own[0, 0], np.clip((x - 75) / 50, 0, 1), atol=1e-5)


def test_volume_statistics_steps_and_channels():
    out = run([{"step": "window", "percentiles": [5, 95]}, {"step": "normalize", "mode": "zscore"},
               {"step": "channels", "replicate": 3}])
    assert out.shape == (1, 3, 20, 36, 40)
    lo, hi = np.percentile(VOL, [5, 95])
    x = np.clip((VOL.astype(np.float64) - lo) / (hi - lo), 0, 1)
    ref = (x - x.mean()) / x.std()
    np.testing.assert_allclose(out[0, 0], ref, atol=tol(ref))
    np.testing.assert_array_equal(out[0, 0], out[0, 2])


@pytest.mark.parametrize("steps, expected", [
    ([{"step": "resize", "width": 8, "height": 8, "depth": 0}], "preprocessing[0].depth"),
    ([{"step": "resample", "spacing_mm": [1, 1, -2]}], "preprocessing[0].spacing_mm"),
    ([{"step": "resample", "spacing_mm": [1, 1, 1, 1]}], "preprocessing[0].spacing_mm"),
    ([{"step": "reorient", "axes": "LLS"}], "preprocessing[0].axes"),
    ([{"step": "reorient", "axes": "LPS", "extra": 1}], "extra"),
    ([{"step": "flip", "axis": "diagonal"}], "preprocessing[0].axis"),
    ([{"step": "window", "center": 1, "width": 2, "function": "cubic"}], "preprocessing[0].function"),
    ([{"step": "window", "center": 1, "width": 0.5, "function": "dicom_linear"}], "preprocessing[0].width"),
    ([{"step": "crop_or_pad", "width": 8, "height": 8, "depth": 99999}], "preprocessing[0].depth"),
])
def test_every_new_validation_error_names_the_step_and_field(steps, expected):
    with pytest.raises(medinfer.InvalidArgumentError) as e:
        run(steps)
    assert expected in str(e.value)


def test_what_volumes_and_images_cannot_do():
    with pytest.raises(medinfer.InvalidArgumentError, match="2D images only"):
        run([{"step": "resize", "width": 8, "height": 8, "depth": 4, "interpolation": "cubic"}])
    with pytest.raises(medinfer.InvalidArgumentError, match="apply_volume"):
        medinfer.preprocess.apply(json.dumps([{"step": "flip", "axis": "depth"}]), VOL[0])
    with pytest.raises(medinfer.InvalidArgumentError, match="3-D array"):
        medinfer.preprocess.apply_volume("[]", VOL[0])
