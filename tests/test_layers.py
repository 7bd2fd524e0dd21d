"""Custom layers: space-to-depth ordering, ERB re-parameterisation, shapes and serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.consistency import enforce_data_consistency
from mrsisr.network.layers import ERB, GDFN, HFAB, SCPA, DepthToSpace, KSpaceConsistency, SpaceToDepth


def test_space_to_depth_keeps_every_pixel_and_depth_to_space_inverts_it():
    x = np.arange(2 * 8 * 12 * 1, dtype=np.float32).reshape(2, 8, 12, 1)
    packed = keras.ops.convert_to_numpy(SpaceToDepth(4)(x))
    assert packed.shape == (2, 2, 3, 16)
    # channel (i * 4 + j) of block (h, w) is pixel (4h + i, 4w + j)
    assert packed[1, 1, 2, 2 * 4 + 3] == x[1, 4 + 2, 8 + 3, 0]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(DepthToSpace(4)(packed)), x)


def test_erb_equals_its_fused_3x3_convolution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 7, 6)).astype(np.float32)
    erb = ERB(6)
    erb.build(x.shape)
    for weight in erb.weights:  # non-zero biases, so the fusion of biases is tested too
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype(np.float32))
    kernel, bias = erb.fused_kernel()
    fused = keras.layers.Conv2D(6, 3, padding="same")
    fused.build(x.shape)
    fused.set_weights([kernel, bias])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(erb(x)), keras.ops.convert_to_numpy(fused(x)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("layer", [ERB(8), HFAB(8, 4), GDFN(8), SCPA(8)], ids=["erb", "hfab", "gdfn", "scpa"])
def test_blocks_keep_shape_and_round_trip_their_config(layer):
    x = np.random.default_rng(1).random((2, 5, 6, 8), dtype=np.float32)
    assert tuple(layer(x).shape) == x.shape
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_gdfn_hidden_width_follows_restormer():
    layer = GDFN(36)
    layer.build((None, 4, 4, 36))
    assert layer.project_in.kernel.shape == (1, 1, 36, 2 * int(2.66 * 36))


def test_scpa_is_pans_block_with_a_residual():
    layer = SCPA(32)
    x = np.random.default_rng(2).random((1, 6, 6, 32), dtype=np.float32)
    layer(x)
    # two 1x1 openings 32->16, plain 3x3, pixel-attention 1x1 (bias) and 3x3, calibrating 3x3, 1x1 merge 32->32
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == 2 * 512 + 3 * 2304 + 272 + 1024
    for weight in layer.trainable_weights:
        weight.assign(np.zeros(weight.shape, np.float32))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)  # zero merge: the identity


def _smooth_maps(n, size, seed):
    """Maps with a decaying spectrum, as metabolite maps have (little energy at the Nyquist frequency)."""
    noise = np.random.default_rng(seed).normal(size=(n, size, size))
    spectrum = np.fft.fft2(noise) / (1.0 + np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size))) * 40) ** 2
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def test_kspace_consistency_gives_the_input_back_and_keeps_the_finer_frequencies():
    rng = np.random.default_rng(3)
    hr, lr = rng.random((2, 64, 48, 1), dtype=np.float32), rng.random((2, 16, 12, 1), dtype=np.float32)
    layer = KSpaceConsistency(4)
    out = layer([hr, lr])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.truncate(out)), lr, atol=2e-5)  # exact
    np.testing.assert_allclose(
        fourier_resample(keras.ops.convert_to_numpy(out)[..., 0], (16, 12)), lr[..., 0], atol=2e-3
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([out, lr])), out, atol=2e-5)  # idempotent
    residual = keras.ops.convert_to_numpy(out - hr)[..., 0]
    spectrum = np.abs(np.fft.fft2(residual))
    assert spectrum[:, 10:54, :].max() < 1e-3 and spectrum[:, :, 8:40].max() < 1e-3  # only lr's frequencies change


def test_kspace_consistency_agrees_with_the_numpy_step_on_smooth_maps():
    hr, lr = _smooth_maps(2, 128, seed=4), _smooth_maps(2, 32, seed=5)
    out = keras.ops.convert_to_numpy(KSpaceConsistency(4)([hr[..., None], lr[..., None]]))[..., 0]
    # they differ only in how the Nyquist rows and columns are shared between the axes (0.4 % here)
    np.testing.assert_allclose(out, enforce_data_consistency(hr, lr), atol=5e-3 * np.abs(out).max())
