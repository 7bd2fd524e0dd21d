"""Custom layers: space-to-depth ordering, ERB re-parameterisation, shapes and serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mrsisr.network.layers import ERB, GDFN, HFAB, DepthToSpace, SpaceToDepth


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


@pytest.mark.parametrize("layer", [ERB(8), HFAB(8, 4), GDFN(8)], ids=["erb", "hfab", "gdfn"])
def test_blocks_keep_shape_and_round_trip_their_config(layer):
    x = np.random.default_rng(1).random((2, 5, 6, 8), dtype=np.float32)
    assert tuple(layer(x).shape) == x.shape
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_gdfn_hidden_width_follows_restormer():
    layer = GDFN(36)
    layer.build((None, 4, 4, 36))
    assert layer.project_in.kernel.shape == (1, 1, 36, 2 * int(2.66 * 36))
