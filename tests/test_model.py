"""The network: shapes, parameter count, guidance switch, save/load, prediction at any size, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from mrsisr.maps.kspace import fourier_resample
from mrsisr.network.layers import ERB, GDFN, HFAB, KSpaceUpsample
from mrsisr.network.model import build_model, count_parameters, inference_network, load_model, predict
from mrsisr.network.packaged import DEFAULT_MODEL

TINY = {"width": 8, "mid_width": 4, "n_pairs": 2}


@pytest.fixture(scope="module")
def tiny():
    return build_model(**TINY)


def _maps(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, h, w), dtype=np.float32), rng.random((n, 4 * h, 4 * w), dtype=np.float32)


def test_default_model_has_the_papers_size_and_shapes():
    model = build_model()
    assert abs(count_parameters(model) - 650_000) <= 0.05 * 650_000
    assert [tuple(t.shape) for t in model.inputs] == [(None, 32, 32, 1), (None, 128, 128, 1)]
    assert tuple(model.output.shape) == (None, 128, 128, 1)
    names = {layer.name for layer in model.layers}
    assert {"space_to_depth", "head_conv", "pair8_erb", "pair8_hfab", "pair8_gdfn", "long_skip"} <= names
    assert {"tail_conv", "depth_to_space", "lr_upsample", "sr"} <= names


def test_ablation_switches_change_the_graph():
    unguided = build_model(**TINY, guided=False, use_gdfn=False)
    assert [t.name for t in unguided.inputs] == ["lr"]
    assert not any("gdfn" in layer.name for layer in unguided.layers)
    lr, _ = _maps(3, 32, 32)
    assert predict(unguided, lr, guide=None).shape == (3, 128, 128)
    assert count_parameters(unguided) < count_parameters(build_model(**TINY))


def test_default_build_is_the_architecture_of_the_packaged_model():
    """The switches added for the ablations leave the default network, and so every saved model, as it was."""
    assert count_parameters(build_model()) == 636_296
    with zipfile.ZipFile(DEFAULT_MODEL) as archive:
        saved = json.loads(archive.read("config.json"))["config"]
    built = json.loads(json.dumps(keras.saving.serialize_keras_object(build_model(guided=False))))["config"]
    assert _comparable(built) == _comparable(saved)


def _comparable(config):
    """``config`` without what changed since the packaged model was saved, the architecture unchanged.

    The layers' "module" moved, ERB/HFAB gained ``compact`` and GDFN ``fused`` (default False, the form the
    packaged model has: training forms, as every saved model).
    """
    if isinstance(config, dict):
        later = {"module", "compact"}
        return {
            key: _comparable(value)
            for key, value in config.items()
            if key not in later and not (key == "fused" and value is False)
        }
    return [_comparable(value) for value in config] if isinstance(config, list) else config


def test_skip_and_guide_entry_switches_round_trip(tmp_path):
    model = build_model(**TINY, global_skip="bilinear", guide_entry="strided_conv")
    assert isinstance(model.get_layer("lr_upsample"), keras.layers.UpSampling2D)
    assert model.get_layer("guide_conv2").output.shape[1:] == (32, 32, 16)
    assert count_parameters(model) == count_parameters(build_model(**TINY)) + (9 * 16 + 16) + (9 * 16 * 16 + 16)
    lr, guide = _maps(2, 32, 32, seed=9)
    np.testing.assert_allclose(predict(model, lr, guide), _bilinear(lr), atol=1e-5)  # zero tail: the skip
    tail = model.get_layer("tail_conv")
    tail.kernel.assign(np.random.default_rng(1).normal(0, 0.1, tail.kernel.shape).astype(np.float32))
    model.save(tmp_path / "switched.keras")
    loaded = load_model(tmp_path / "switched.keras")
    assert loaded.name == model.name == "mrsisr_w8_m4_p2_gdfn_guided_bilinear_strided_conv"
    np.testing.assert_array_equal(predict(loaded, lr, guide), predict(model, lr, guide))
    for name in ("global_skip", "guide_entry"):
        with pytest.raises(ValueError, match=f"build_model: {name} must be one of"):
            build_model(**TINY, **{name: "other"})


def _bilinear(maps):
    """Bilinear x4 with half-pixel centres and edge clamping, in numpy (the pixel-area aligned interpolation)."""
    n = maps.shape[1]
    position = np.clip((np.arange(4 * n) + 0.5) / 4 - 0.5, 0, n - 1)
    low = np.floor(position).astype(int)
    high, frac = np.minimum(low + 1, n - 1), position - low
    weights = np.zeros((4 * n, n))
    np.add.at(weights, (np.arange(4 * n), low), 1 - frac)
    np.add.at(weights, (np.arange(4 * n), high), frac)
    return np.einsum("ij,bjk,lk->bil", weights, maps, weights)


def test_untrained_output_is_the_kspace_upsampled_map(tiny):
    lr, guide = _maps(2, 32, 32)
    out = predict(tiny, lr, guide)
    assert out.shape == (2, 128, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, _skip(lr), atol=1e-5)  # the tail starts at zero
    np.testing.assert_allclose(_skip(lr), fourier_resample(lr, 128), atol=0.02)  # separable vs 2D at Nyquist


def _skip(maps):
    return np.asarray(KSpaceUpsample(4)(maps[..., None]))[..., 0]


@pytest.fixture(scope="module")
def tiny_with_tail():
    model = build_model(**TINY)
    tail = model.get_layer("tail_conv")
    tail.kernel.assign(np.random.default_rng(0).normal(0, 0.1, tail.kernel.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("shape", [(64, 64), (32, 42), (8, 8)])
def test_predict_takes_any_in_plane_size_with_the_same_weights(tiny_with_tail, shape):
    lr, guide = _maps(5, *shape)
    out = predict(tiny_with_tail, lr, guide, batch_size=2)
    assert out.shape == (5, 4 * shape[0], 4 * shape[1])
    # the convolutional part (output minus the global k-space skip) of the 32x32 network on a centre crop
    # agrees beyond the receptive field (13 LR pixels) from the crop's edges; the k-space skip itself is global
    if shape == (64, 64):
        lr_crop = lr[:, 16:48, 16:48]
        crop = predict(tiny_with_tail, lr_crop, guide[:, 64:192, 64:192]) - _skip(lr_crop)
        residual = out - _skip(lr)
        inner = slice(64 + 52, 192 - 52)
        assert np.abs(crop).max() > 1e-3  # the convolutional part is not trivially zero
        np.testing.assert_allclose(residual[:, inner, inner], crop[:, 52:-52, 52:-52], atol=1e-4)


def test_save_and_load_give_identical_predictions(tiny, tmp_path):
    path = tmp_path / "model.keras"
    tiny.save(path)
    loaded = load_model(path)
    lr, guide = _maps(4, 32, 32, seed=3)
    np.testing.assert_array_equal(predict(loaded, lr, guide), predict(tiny, lr, guide))


def test_mixed_bfloat16_model_keeps_the_skip_and_output_in_float32_and_round_trips(tmp_path):
    mixed = build_model(**TINY, dtype_policy="mixed_bfloat16")
    assert count_parameters(mixed) == count_parameters(build_model(**TINY))
    assert mixed.get_layer("pair1_hfab").squeeze.compute_dtype == "bfloat16"  # nested layers follow the policy
    assert mixed.get_layer("pair1_erb").conv.variable_dtype == "float32"
    assert mixed.get_layer("lr_upsample").compute_dtype == "float32" and mixed.output.dtype == "float32"
    lr, guide = _maps(3, 32, 32, seed=5)
    np.testing.assert_allclose(predict(mixed, lr, guide), _skip(lr), atol=1e-5)  # zero tail: the exact skip
    tail = mixed.get_layer("tail_conv")
    tail.kernel.assign(np.random.default_rng(0).normal(0, 0.1, tail.kernel.shape).astype(np.float32))
    mixed.save(tmp_path / "mixed.keras")
    loaded = load_model(tmp_path / "mixed.keras")
    assert loaded.get_layer("pair1_hfab").squeeze.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(predict(loaded, lr, guide), predict(mixed, lr, guide))
    with pytest.raises(ValueError, match="dtype_policy must be one of"):
        build_model(**TINY, dtype_policy="float16")


def test_compiled_graph_computes_what_the_layers_define():
    """model.predict (a compiled graph) equals the layer-by-layer call; TensorFlow's remapper broke this."""
    model = build_model(**TINY)
    rng = np.random.default_rng(0)
    for weight in model.trainable_weights:  # every layer active, BatchNorm scales around 1
        offset = 1.0 if "gamma" in weight.name else 0.0
        weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32) + offset)
    lr, guide = _maps(4, 32, 32, seed=7)
    inputs = {"lr": lr[..., None], "guide": guide[..., None]}
    eager = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_allclose(model.predict(inputs, verbose=0), eager, atol=1e-3 * np.abs(eager).max())
    np.testing.assert_allclose(predict(model, lr, guide), eager[..., 0], atol=1e-3 * np.abs(eager).max())


def test_inference_network_fuses_every_erb_and_follows_later_training(tiny_with_tail):
    network = inference_network(tiny_with_tail, (32, 32))
    erbs = [layer for layer in network.layers if isinstance(layer, ERB)]
    erbs += [layer.erb for layer in network.layers if isinstance(layer, HFAB)]
    assert len(erbs) == 2 * TINY["n_pairs"] and all(erb.fused for erb in erbs)
    assert count_parameters(network) < count_parameters(tiny_with_tail)
    lr, guide = _maps(3, 32, 32, seed=8)
    before = predict(tiny_with_tail, lr, guide)
    eager = keras.ops.convert_to_numpy(tiny_with_tail({"lr": lr[..., None], "guide": guide[..., None]}))[..., 0]
    np.testing.assert_allclose(before, eager, atol=1e-5)
    head = tiny_with_tail.get_layer("head_conv")
    original = head.kernel.numpy()
    head.kernel.assign(original * 1.5)  # as if trained further: predict must not use stale weights
    try:
        assert np.abs(predict(tiny_with_tail, lr, guide) - before).max() > 1e-4
    finally:
        head.kernel.assign(original)


def test_inference_form_folds_normalisations_exactly():
    """The HFABs' last BatchNorm (moving statistics) and the GDFNs' LayerNorm affine fold without changing outputs."""
    model = build_model(**TINY)
    rng = np.random.default_rng(3)
    for weight in model.weights:  # trained-looking statistics and affine parameters, not the initial ones
        if any(part in weight.path for part in ("bn_", "ln/", "tail_conv")):
            base = 1.0 if weight.name in ("gamma", "moving_variance") else 0.0
            weight.assign(np.abs(rng.normal(base, 0.3, weight.shape)).astype(np.float32) + base)
    network = inference_network(model, (32, 32))
    assert all(not hasattr(layer, "norm_out") for layer in network.layers if isinstance(layer, HFAB))
    assert all(layer.fused and not layer.norm.scale for layer in network.layers if isinstance(layer, GDFN))
    lr, guide = _maps(3, 32, 32, seed=9)
    eager = keras.ops.convert_to_numpy(model({"lr": lr[..., None], "guide": guide[..., None]}, training=False))
    np.testing.assert_allclose(predict(model, lr, guide), eager[..., 0], atol=2e-5 * np.abs(eager).max())


def test_compact_erbs_train_the_convolution_the_expanded_form_fuses_to(tmp_path):
    """erb_form="compact": one residual 3x3 convolution per ERB, the same inference form, saved and reloaded."""
    expanded, compact = build_model(**TINY), build_model(**TINY, erb_form="compact")
    erbs = [layer for layer in compact.layers if isinstance(layer, ERB)]
    erbs += [layer.erb for layer in compact.layers if isinstance(layer, HFAB)]
    assert all(erb.compact and not erb.fused for erb in erbs) and compact.name.endswith("_compact")
    width, mid = TINY["width"], TINY["mid_width"]
    expanded_erb = {c: 2 * c * c + (9 * 4 * c * c + 2 * c) + (2 * c * c + c) for c in (width, mid)}  # 1x1, 3x3, 1x1
    saved = sum(expanded_erb[c] - (9 * c * c + c) for c in (width, mid)) * TINY["n_pairs"]
    assert count_parameters(expanded) - count_parameters(compact) == saved
    rng = np.random.default_rng(3)
    for weight in compact.trainable_weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype(np.float32))
    lr, guide = _maps(3, 32, 32, seed=4)
    eager = keras.ops.convert_to_numpy(compact({"lr": lr[..., None], "guide": guide[..., None]}))[..., 0]
    np.testing.assert_allclose(predict(compact, lr, guide), eager, atol=1e-5)
    compact.save(tmp_path / "compact.keras")
    reloaded = load_model(tmp_path / "compact.keras")
    np.testing.assert_array_equal(predict(reloaded, lr, guide), predict(compact, lr, guide))
    with pytest.raises(ValueError, match="erb_form"):
        build_model(**TINY, erb_form="fused")


@pytest.mark.parametrize(
    ("lr_shape", "guide_shape", "message"),
    [((4, 32), (4, 128, 128), r"\(N, h, w\).*\(4, 32\)"), ((4, 32, 32), (4, 128, 120), r"guide shape \(4, 128, 120\)")],
)
def test_predict_rejects_bad_shapes_naming_them(tiny, lr_shape, guide_shape, message):
    with pytest.raises(ValueError, match=message):
        predict(tiny, np.zeros(lr_shape, np.float32), np.zeros(guide_shape, np.float32))


def test_guided_model_needs_the_guide(tiny):
    with pytest.raises(ValueError, match="guide"):
        predict(tiny, np.zeros((1, 32, 32), np.float32))


def test_load_model_names_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.keras"):
        load_model(tmp_path / "absent.keras")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt.keras"):
        load_model(corrupt)
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{")
    with pytest.raises(ValueError, match="broken.keras"):
        load_model(broken)
    import keras

    foreign = tmp_path / "foreign.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]).save(foreign)
    with pytest.raises(ValueError, match="foreign.keras.*not an mrsisr network"):
        load_model(foreign)


FORWARD = (
    "import numpy as np; from mrsisr.network.model import build_model, predict; "
    "m = build_model(width=8, mid_width=4, n_pairs=1); "
    "print(predict(m, np.zeros((2, 32, 32), 'f4'), np.zeros((2, 128, 128), 'f4')).shape)"
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_builds_and_runs_under_each_installed_backend(backend):
    pytest.importorskip(backend)
    env = os.environ | {"KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", FORWARD], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2, 128, 128)" in result.stdout
