"""Classical baselines: geometry, exactness on simple inputs, shapes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mrsisr.maps.kspace import fourier_resample
from mrsisr.scoring.baselines import METHODS, bicubic_matrix, interpolate, keys_kernel


def test_methods_listed() -> None:
    assert METHODS == ("nearest", "spline", "bicubic", "kspace")


@pytest.mark.parametrize("method", METHODS)
def test_constant_map_is_kept_and_shapes(method: str) -> None:
    lr = np.full((2, 8, 6), 0.4, dtype=np.float32)
    out = interpolate(lr, method)
    assert out.shape == (2, 32, 24) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.4, atol=1e-5)
    assert interpolate(lr[0], method).shape == (32, 24)


def test_nearest_repeats_blocks() -> None:
    lr = np.arange(4, dtype=np.float32).reshape(2, 2)
    np.testing.assert_array_equal(
        interpolate(lr, "nearest", factor=2), [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    )


def test_keys_kernel_hand_values() -> None:
    # a = -0.5: k(0) = 1, k(1) = k(2) = 0, k(0.5) = 0.5625, k(1.5) = -0.0625
    np.testing.assert_allclose(keys_kernel(np.array([0.0, 0.5, 1.0, 1.5, 2.0])), [1, 0.5625, 0, -0.0625, 0])


def test_bicubic_is_pixel_area_aligned_and_reproduces_ramps() -> None:
    matrix = bicubic_matrix(16, 4)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    ramp = np.tile(np.arange(16.0), (16, 1))
    centres = (np.arange(64) + 0.5) / 4 - 0.5  # output pixel i samples input coordinate (i + 0.5) / 4 - 0.5
    np.testing.assert_allclose(interpolate(ramp, "bicubic")[:, 8:-8], np.tile(centres[8:-8], (64, 1)), atol=1e-4)


def test_spline_and_kspace_are_the_named_library_calls() -> None:
    lr = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    spline = ndimage.zoom(lr, 4, order=3, mode="reflect", grid_mode=True)
    np.testing.assert_allclose(interpolate(lr, "spline"), spline, atol=1e-6)
    np.testing.assert_allclose(interpolate(lr, "kspace"), fourier_resample(lr, 64), atol=1e-6)
    assert not np.allclose(interpolate(lr, "spline"), interpolate(lr, "bicubic"), atol=1e-3)


@pytest.mark.parametrize(
    ("lr", "method", "message"),
    [
        (np.zeros((4, 4)), "lanczos", "unknown upscaling method"),
        (np.zeros(4), "nearest", "shape"),
        (np.full((4, 4), np.nan), "spline", "NaN"),
    ],
)
def test_bad_input(lr: np.ndarray, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interpolate(lr, method)
