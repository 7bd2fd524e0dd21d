"""Tests of mrsisr.maps.kspace.fourier_resample: k-space truncation and zero filling, pixel-area aligned."""

import numpy as np
import pytest

from mrsisr.maps.kspace import fourier_resample


def _cosine(n: int, cycles: int) -> np.ndarray:
    """A separable cosine sampled at pixel centres (i + 0.5) / n of the field of view [0, 1)."""
    centres = (np.arange(n) + 0.5) / n
    line = np.cos(2 * np.pi * cycles * centres)
    return np.outer(line, line)


def test_band_limited_map_is_sampled_at_low_resolution_pixel_centres():
    low = fourier_resample(_cosine(128, 3), 32)
    np.testing.assert_allclose(low, _cosine(32, 3), atol=1e-5)


def test_zero_filling_then_truncation_returns_the_low_resolution_map():
    lr = np.stack([_cosine(32, 3) + 0.5 * _cosine(32, 7), _cosine(32, 15)])
    np.testing.assert_allclose(fourier_resample(fourier_resample(lr, 128), 32), lr, atol=1e-5)


def test_concentration_is_kept():
    hr = np.random.default_rng(1).random((128, 128))
    assert fourier_resample(hr, 32).mean() == pytest.approx(hr.mean(), rel=1e-5)
    assert fourier_resample(np.full((32, 32), 2.5), 128) == pytest.approx(2.5, rel=1e-5)


def test_shapes_batches_and_dtype():
    out = fourier_resample(np.zeros((3, 2, 64, 48)), (16, 12))
    assert out.shape == (3, 2, 16, 12)
    assert out.dtype == np.float32


def test_hamming_window_reduces_ringing_at_an_edge():
    edge = np.zeros((128, 128))
    edge[:, 62:] = 1.0
    plain = fourier_resample(edge, 32)
    windowed = fourier_resample(edge, 32, window="hamming")
    assert plain.max() > 1.05
    assert plain.min() < -0.05
    assert windowed.max() < 1.01  # Hamming keeps 8 % at its edges: a trace of ringing remains
    assert windowed.min() > -0.01


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        fourier_resample(np.zeros(5), 4)
    with pytest.raises(ValueError, match="unknown k-space window 'hann'"):
        fourier_resample(np.zeros((8, 8)), 4, window="hann")
