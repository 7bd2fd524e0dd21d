"""Peer networks and the registry: every row builds, predicts, trains a step, saves and reloads; sizes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mrsisr.network.layers import KSpaceConsistency
from mrsisr.network.model import build_model, count_parameters, is_guided, load_model, predict
from mrsisr.network.variants import STUDY_RECIPE, VARIANTS, build_authors_model, build_dual_encoder_unet

# trainable parameters of each full-size row (deterministic: a change here is a change of architecture)
FULL_SIZE_PARAMETERS = {
    "main": 636_296,
    "no_guide": 631_112,
    "no_gdfn": 536_632,
    "pairs4": 323_520,
    "bilinear_skip": 636_296,
    "strided_guide": 638_776,
    "authors": 627_367,
    "dual_unet": 629_994,
    "dual_unet_dc": 629_994,
}
# rows meant to be the size of the paper's network (about 650,000) and of ours (636,296)
SAME_SIZE = ("main", "bilinear_skip", "strided_guide", "authors", "dual_unet", "dual_unet_dc")


def _maps(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 32, 32), dtype=np.float32), rng.random((n, 128, 128), dtype=np.float32)


def test_registry_lists_every_row_with_a_description():
    assert set(VARIANTS) == set(FULL_SIZE_PARAMETERS)
    assert all(variant.description and "\n" not in variant.description for variant in VARIANTS.values())


@pytest.mark.parametrize("name", sorted(FULL_SIZE_PARAMETERS))
def test_full_size_parameter_counts(name):
    count = count_parameters(VARIANTS[name].build())
    assert count == FULL_SIZE_PARAMETERS[name]
    if name in SAME_SIZE:
        assert abs(count - 636_296) <= 0.03 * 636_296


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_tiny_variant_trains_a_step_round_trips_and_predicts(name, tmp_path):
    model = VARIANTS[name].build(tiny=True)
    assert count_parameters(model) < 40_000 and VARIANTS[name].guided == is_guided(model)
    lr, guide = _maps(2, seed=1)
    inputs = {"lr": lr[..., None]} | ({"guide": guide[..., None]} if is_guided(model) else {})
    before = keras.ops.convert_to_numpy(model(inputs, training=False))
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(1e-3), loss=keras.losses.LogCosh(), run_eagerly=True)  # no tracing: fast
    loss = float(model.train_on_batch(inputs, np.clip(before + 0.1, 0.0, 1.0)))
    assert np.isfinite(loss) and loss > 0
    after = keras.ops.convert_to_numpy(model(inputs, training=False))
    assert np.abs(after - before).max() > 0  # the step changed the network
    model.save(tmp_path / f"{name}.keras")
    loaded = load_model(tmp_path / f"{name}.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(inputs, training=False)), after)
    out = predict(loaded, lr, guide if is_guided(loaded) else None)
    assert out.shape == (2, 128, 128)
    np.testing.assert_allclose(out, after[..., 0], atol=1e-5)  # the inference form (fused ERBs) agrees


def test_authors_model_has_the_published_design_and_a_sigmoid_output():
    model = build_authors_model(width=8, mid_width=4, n_pairs=2)
    names = {layer.name for layer in model.layers}
    assert {"pair2_scpa", "pair2_hfab", "long_skip", "gdfn", "pixel_shuffle", "sr"} <= names
    assert "pair3_scpa" not in names and model.get_layer("gdfn").channels == 16  # GDFN on head + trunk
    lr, guide = _maps(3, seed=2)
    out = predict(model, lr * 50 - 25, guide)
    assert out.min() >= 0 and out.max() <= 1
    assert [t.name for t in build_authors_model(width=8, mid_width=4, n_pairs=1, guided=False).inputs] == ["lr"]


def test_dual_unet_fuses_two_encoders_and_its_data_consistency_keeps_the_input():
    model = build_dual_encoder_unet(features=4, data_consistency=True)
    fuse = model.get_layer("dec0_fuse")
    assert [t.shape[-1] for t in fuse.input] == [4, 4, 4]  # map encoder, map + guide encoder, decoder
    assert isinstance(model.get_layer("sr"), KSpaceConsistency)
    lr, guide = _maps(2, seed=3)
    out = predict(model, lr, guide)
    back = np.asarray(KSpaceConsistency(4).truncate(out[..., None]))[..., 0]
    np.testing.assert_allclose(back, lr, atol=1e-5)


def test_dual_unet_refuses_sizes_its_pooling_cannot_halve():
    with pytest.raises(ValueError, match=r"multiples of 2\*\*levels = 8"):
        build_dual_encoder_unet(features=4, lr_shape=(32, 31))


def test_variant_overrides_win_over_the_row():
    model = VARIANTS["authors"].build(tiny=True, dtype_policy="mixed_bfloat16")
    assert model.get_layer("pair1_scpa").compute_dtype == "bfloat16" and model.output.dtype == "float32"


def test_the_study_rows_take_the_recorded_erb_form_and_the_peers_take_none():
    study = [name for name, variant in VARIANTS.items() if variant.builder is build_model]
    assert {name for name, variant in VARIANTS.items() if variant.recipe == STUDY_RECIPE} == set(study)
    assert all(not VARIANTS[name].recipe for name in ("authors", "dual_unet", "dual_unet_dc"))
    expanded, compact = (VARIANTS["main"].build(tiny=True, erb_form=form) for form in ("expanded", "compact"))
    assert compact.name == expanded.name + "_compact" and count_parameters(compact) < count_parameters(expanded)
