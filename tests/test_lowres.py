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


@pytest.mark.parametrize("method", LOWRES_METHODS)
def test_noise_has_the_requested_sd_of_each_maps_maximum(method):
    hr = np.stack([_smooth_map() * scale for scale in (1.0, 4.0)] * 16)
    clean = make_lowres(hr, 32, method)
    noisy = make_lowres(hr, 32, method, noise=0.05, rng=np.random.default_rng(0))
    residual = (noisy - clean).astype(np.float64)
    assert residual[0::2].std() == pytest.approx(0.05, rel=0.02)
    assert residual[1::2].std() == pytest.approx(0.20, rel=0.02)  # the SD follows each map's maximum
    assert abs(residual.mean()) < 0.005
    again = make_lowres(hr, 32, method, noise=0.05, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, again)


def test_no_noise_is_bit_identical_to_the_plain_call():
    hr = np.random.default_rng(1).random((2, 128, 128)).astype(np.float32)
    plain = make_lowres(hr, 32, "kspace")
    np.testing.assert_array_equal(make_lowres(hr, 32, "kspace", noise=0.0, rng=np.random.default_rng(3)), plain)
    np.testing.assert_array_equal(make_lowres(hr, 32, "kspace", noise=0.0), plain)


def test_noise_needs_a_generator_and_a_non_negative_sd():
    hr = np.zeros((128, 128), np.float32)
    with pytest.raises(ValueError, match="rng"):
        make_lowres(hr, 32, "kspace", noise=0.01)
    with pytest.raises(ValueError, match=">= 0"):
        make_lowres(hr, 32, "kspace", noise=-0.01, rng=np.random.default_rng(0))
