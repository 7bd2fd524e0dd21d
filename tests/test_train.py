"""Training: shuffled batches, loss falls, resume after a kill, determinism, time budget, strategies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import smooth_maps

from mrsisr.network.model import build_model
from mrsisr.network.train import (
    EpochBatches,
    TrainConfig,
    compile_model,
    distribution_scope,
    learning_rate_schedule,
    train,
)
from mrsisr.stages.training import train_config
from mrsisr.study.profiles import load_profile, stage_parameters

TINY = {"width": 8, "mid_width": 4, "n_pairs": 1}


def config(**changes) -> TrainConfig:
    """Training settings of the ci profile with ``changes`` (parameter names of profiles.yaml)."""
    return train_config(stage_parameters("training", load_profile("ci", changes)))


def epoch_of(batches: EpochBatches, epoch: int) -> list[tuple[dict, np.ndarray]]:
    batches.epoch = epoch
    return [batches[i] for i in range(len(batches))]


def test_each_epoch_is_a_reproducible_permutation_in_aligned_batches():
    lr, guide, hr = smooth_maps(10, seed=1)
    batches = EpochBatches(lr, guide, hr, config(batch_size=4, seed=3))
    first = epoch_of(batches, 2)
    assert len(batches) == 3 and [len(y) for _, y in first] == [4, 4, 2]
    for (x, y), (x_again, y_again) in zip(first, epoch_of(batches, 2), strict=True):
        np.testing.assert_array_equal(y, y_again)
        np.testing.assert_array_equal(x["guide"], x_again["guide"])
        np.testing.assert_allclose(x["guide"], 1.0 - y, atol=1e-6)  # plain batches: guide untouched, aligned
        np.testing.assert_allclose(y[..., 0].reshape(-1, 32, 4, 32, 4).mean(axis=(2, 4)), x["lr"][..., 0], atol=1e-6)
    targets = np.concatenate([y for _, y in first])[..., 0]
    np.testing.assert_allclose(np.sort(targets.sum(axis=(1, 2))), np.sort(hr.sum(axis=(1, 2))), rtol=1e-5)
    assert not np.array_equal(targets, np.concatenate([y for _, y in epoch_of(batches, 3)])[..., 0])


def test_guide_randomisation_changes_only_the_guides():
    lr, guide, hr = smooth_maps(8, seed=4)
    plain = epoch_of(EpochBatches(lr, guide, hr, config(batch_size=4)), 0)
    for settings in ({"guide_augment": True}, {"guide_dropout": 1.0}):
        randomised = epoch_of(EpochBatches(lr, guide, hr, config(batch_size=4, **settings)), 0)
        for (x, y), (x_r, y_r) in zip(plain, randomised, strict=True):
            np.testing.assert_array_equal(y, y_r)
            np.testing.assert_array_equal(x["lr"], x_r["lr"])
            assert not np.array_equal(x["guide"], x_r["guide"])
    assert not any(x["guide"].any() for x, _ in randomised)  # dropout 1: every guide is zeros
    unguided = epoch_of(EpochBatches(lr, None, hr, config(batch_size=4, guide_augment=True)), 0)
    assert all(set(x) == {"lr"} for x, _ in unguided)


def test_patches_are_aligned_windows_and_an_epoch_covers_the_maps_area():
    lr, guide, hr = smooth_maps(10, seed=5)
    batches = EpochBatches(lr, guide, hr, config(batch_size=8, seed=2, patch_size=16))
    assert batches.patches_per_map == 4 and len(batches) == 5 and batches.map_equivalents == 10
    first = epoch_of(batches, 1)
    for (x, y), (_, y_again) in zip(first, epoch_of(batches, 1), strict=True):
        assert x["lr"].shape[1:3] == (16, 16) and y.shape[1:3] == x["guide"].shape[1:3] == (64, 64)
        np.testing.assert_array_equal(y, y_again)
        np.testing.assert_allclose(x["guide"], 1.0 - y, atol=1e-6)
        np.testing.assert_allclose(y[..., 0].reshape(-1, 16, 4, 16, 4).mean(axis=(2, 4)), x["lr"][..., 0], atol=1e-6)
    windows = np.concatenate([y for _, y in first])[..., 0]
    assert len(windows) == 40 and len({w.tobytes() for w in windows}) > 30  # random windows, not one per map
    with_margin = EpochBatches(lr, guide, hr, config(batch_size=8, patch_size=16, patch_margin=2))[0]
    weights = with_margin[2]
    assert weights.shape == (8, 64, 64) and not weights[:, :8].any() and not weights[:, :, -8:].any()
    np.testing.assert_allclose(weights.mean(axis=(1, 2)), 1.0, rtol=1e-6)
    for patch, margin in ((40, 0), (16, 8)):
        with pytest.raises(ValueError, match=f"patch_size {patch} and patch_margin {margin} do not fit 32x32 maps"):
            EpochBatches(lr, guide, hr, config(patch_size=patch, patch_margin=margin))


@pytest.fixture(scope="module")
def data():
    return smooth_maps(24, seed=2), smooth_maps(8, seed=3)


def _train(data, folder, epochs, callbacks=(), **kwargs):
    settings = config(epochs=epochs, batch_size=8, learning_rate=3e-3, **kwargs)
    return train(lambda: build_model(**TINY), data[0], data[1], settings, folder, progress=False, callbacks=callbacks)


def test_loss_decreases_and_history_is_written(data, tmp_path):
    result = _train(data, tmp_path, epochs=4)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert set(history) == {"epoch", "loss", "val_loss", "learning_rate", "seconds"}
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert result.info["best_val_loss"] == pytest.approx(history["val_loss"].min())
    assert result.info["epochs_run"] == 4 and not result.stopped_by_budget


class Kill(keras.callbacks.Callback):
    """Stand-in for kill -9: abort in the middle of epoch ``epoch`` (0-based), nothing of it saved."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise KeyboardInterrupt("killed")


@pytest.mark.parametrize(
    "settings",
    [
        {"learning_rate_schedule": "cosine", "guide_augment": True, "guide_dropout": 0.2},
        {"patch_size": 16, "patch_margin": 2, "guide_augment": True},
    ],
    ids=["full-maps", "patches"],
)
def test_a_run_killed_and_resumed_equals_an_uninterrupted_one_bit_for_bit(data, tmp_path, settings):
    with pytest.raises(KeyboardInterrupt):
        _train(data, tmp_path / "killed", epochs=4, callbacks=[Kill(epoch=2)], **settings)
    with open(tmp_path / "killed" / "history.csv", "a") as log:
        log.write("3,0.00")  # a row cut short by the kill: the resume drops what the checkpoint does not hold
    resumed = _train(data, tmp_path / "killed", epochs=4, **settings)
    straight = _train(data, tmp_path / "straight", epochs=4, **settings)
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(resumed.history.drop(columns="seconds"), straight.history.drop(columns="seconds"))
    for resumed_weight, straight_weight in zip(resumed.model.get_weights(), straight.model.get_weights(), strict=True):
        np.testing.assert_array_equal(resumed_weight, straight_weight)
    assert resumed.info["best_val_loss"] == straight.info["best_val_loss"]


def test_time_budget_stops_cleanly_after_a_completed_epoch(data, tmp_path):
    result = _train(data, tmp_path, epochs=50, time_budget_min=1e-4)
    assert result.stopped_by_budget and len(result.history) == 1 and result.info["epochs_run"] == 1
    assert (tmp_path / "checkpoint.keras").is_file() and (tmp_path / "best.keras").is_file()
    finished = _train(data, tmp_path, epochs=1)  # a run that is complete already only loads its best model
    assert len(finished.history) == 1 and not finished.stopped_by_budget
    fewer = tuple(a[:16] for a in data[0])  # 2 steps per epoch: the saved 3 steps are not whole epochs
    with pytest.raises(ValueError, match="checkpoint.keras does not match this training set"):
        _train((fewer, data[1]), tmp_path, epochs=50)


def test_empty_data_and_unknown_choices_are_refused(data, tmp_path):
    empty = tuple(a[:0] for a in data[0])
    with pytest.raises(ValueError, match="must not be empty"):
        _train((empty, data[1]), tmp_path, epochs=1)
    with pytest.raises(ValueError, match="lr_schedule 'linear'"):
        learning_rate_schedule(replace(config(), lr_schedule="linear"), 10)


def test_a_strategy_the_backend_cannot_run_is_named(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ValueError, match="TF_CONFIG"):
            distribution_scope("multiworker")
    else:
        with pytest.raises(ValueError, match="strategy 'mirrored' needs KERAS_BACKEND=tensorflow"):
            distribution_scope("mirrored")


def _rates(config: TrainConfig, steps_per_epoch: int, steps: list[int]) -> np.ndarray:
    schedule = learning_rate_schedule(config, steps_per_epoch)
    return np.array([float(schedule(step)) if callable(schedule) else schedule for step in steps])


def test_learning_rate_warms_up_linearly_then_follows_its_schedule():
    constant = config(epochs=10, learning_rate=1e-3)
    assert learning_rate_schedule(constant, 20) == 1e-3  # a plain float: no schedule object needed
    warm_constant = config(epochs=10, learning_rate=1e-3, warmup_epochs=0.5)  # 10 warm-up steps
    np.testing.assert_allclose(_rates(warm_constant, 20, [0, 5, 10, 100, 199]), [0, 5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-5)
    warm_cosine = config(epochs=10, learning_rate=1e-3, learning_rate_schedule="cosine", warmup_epochs=1)
    rates = _rates(warm_cosine, 20, [0, 10, 20, 110, 200])
    np.testing.assert_allclose(rates[:3], [0, 5e-4, 1e-3], rtol=1e-5)
    # after the warm-up the cosine runs over the remaining 180 steps: half-way at step 110, 1 % at the end
    np.testing.assert_allclose(rates[3:], [1e-3 * (0.01 + 0.99 * 0.5), 1e-5], rtol=1e-4)
    cosine = config(epochs=10, learning_rate=1e-3, learning_rate_schedule="cosine")
    np.testing.assert_allclose(_rates(cosine, 20, [0, 100, 200]), [1e-3, 1e-3 * 0.505, 1e-5], rtol=1e-4)


def test_gradient_clipping_is_set_on_the_optimizer_only_when_asked():
    clipped, free = build_model(**TINY), build_model(**TINY)
    compile_model(clipped, config(clip_norm=0.5), steps_per_epoch=3)
    compile_model(free, config(), steps_per_epoch=3)
    assert clipped.optimizer.global_clipnorm == 0.5
    assert free.optimizer.global_clipnorm is None


MIRRORED = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import json, sys, tempfile
    sys.path.insert(0, {tests!r})
    from test_train import TINY, smooth_maps
    from mrsisr.network.model import build_model
    from mrsisr.network.train import train
    from mrsisr.stages.training import train_config
    from mrsisr.study.profiles import load_profile, stage_parameters
    assert tf.distribute.MirroredStrategy().num_replicas_in_sync == 2
    changes = dict(epochs=3, batch_size=8, learning_rate=3e-3, strategy="mirrored")
    settings = train_config(stage_parameters("training", load_profile("ci", changes)))
    result = train(lambda: build_model(**TINY), smooth_maps(24, 2), smooth_maps(8, 3), settings,
                   tempfile.mkdtemp(), progress=False)
    print("LOSSES", json.dumps(list(result.history["loss"])))
    """
)


def test_mirrored_strategy_over_two_logical_cpus_trains():
    script = MIRRORED.format(tests=os.path.dirname(__file__))
    env = os.environ | {"KERAS_BACKEND": "tensorflow"}  # a TensorFlow feature, whatever backend runs the suite
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    losses = json.loads(result.stdout.split("LOSSES", 1)[1])
    assert losses[-1] < losses[0]
