"""Low-resolution methods: mean kept, geometry aligned with block means, bad input."""

import numpy as np
import pytest

from mrsisr.maps.lowres import LOWRES_METHODS, make_lowres


def _smooth_map(size=128):
    y, x = np.mgrid[0:size, 0:size] / size
    return (1 + np.sin(2 * np.pi * x) * np.cos(4 * np.pi * y)).astype(np.float32) / 2


@pytest.mark.parametrize("method", LOWRES_METHODS)
def test_shape_and_mean_are_kept(method):
    hr = np.random.default_rng(0).random((3, 128, 128)).astype(np.float32)
    lr = make_lowres(hr, 32, method)
    assert lr.shape == (3, 32, 32) and lr.dtype == np.float32
    np.testing.assert_allclose(lr.mean(axis=(1, 2)), hr.mean(axis=(1, 2)), rtol=1e-4)


def test_block_means_by_hand():
    hr = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(make_lowres(hr, 2, "block"), [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize("method", ["kspace", "hamming"])
def test_kspace_geometry_matches_block_means_on_smooth_maps(method):
    hr = _smooth_map()
    block = make_lowres(hr, 32, "block")
    assert np.abs(make_lowres(hr, 32, method) - block).max() < 0.03


def test_unknown_method_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown lowres_method"):
        make_lowres(np.zeros((128, 128)), 32, "bilinear")
    with pytest.raises(ValueError, match="divisible"):
        make_lowres(np.zeros((100, 100)), 32, "block")
