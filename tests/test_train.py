"""Training: augmentation alignment, loss falls, checkpoint/resume, time budget, strategies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from mrsisr.network.model import build_model
from mrsisr.network.train import (
    TrainConfig,
    augment_batch,
    compile_model,
    distribution_scope,
    epoch_arrays,
    learning_rate_schedule,
    train,
)

TINY = {"width": 8, "mid_width": 4, "n_pairs": 1}


def smooth_maps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stand-in dataset: smooth random fields (hr), their 4x4 block means (lr) and a related guide."""
    rng = np.random.default_rng(seed)
    hr = ndimage.gaussian_filter(rng.random((n, 128, 128)), sigma=(0, 6, 6))
    hr = (hr - hr.min(axis=(1, 2), keepdims=True)) / np.ptp(hr, axis=(1, 2), keepdims=True)
    lr = hr.reshape(n, 32, 4, 32, 4).mean(axis=(2, 4))
    return lr.astype(np.float32), (1.0 - hr).astype(np.float32), hr.astype(np.float32)


def test_augmentation_keeps_map_guide_and_target_aligned():
    lr, guide, hr = smooth_maps(6, seed=0)
    for seed in range(8):
        a_lr, a_guide, a_hr = augment_batch(lr, guide, hr, np.random.default_rng(seed))
        np.testing.assert_allclose(a_hr.reshape(6, 32, 4, 32, 4).mean(axis=(2, 4)), a_lr, atol=1e-6)
        np.testing.assert_allclose(a_guide, 1.0 - a_hr, atol=1e-6)
    transforms = {augment_batch(lr, None, hr, np.random.default_rng(s))[2].tobytes() for s in range(40)}
    assert len(transforms) == 8  # the 8 symmetries of the square all occur


def test_epoch_arrays_are_a_reproducible_permutation():
    lr, guide, hr = smooth_maps(10, seed=1)
    first = epoch_arrays(lr, guide, hr, batch_size=4, seed=3, epoch=2)
    again = epoch_arrays(lr, guide, hr, batch_size=4, seed=3, epoch=2)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.sort(first[2].sum(axis=(1, 2))), np.sort(hr.sum(axis=(1, 2))), rtol=1e-5)
    other = epoch_arrays(lr, guide, hr, batch_size=4, seed=3, epoch=3)
    assert not np.array_equal(first[2], other[2])


@pytest.fixture(scope="module")
def data():
    return smooth_maps(24, seed=2), smooth_maps(8, seed=3)


def _train(data, folder, epochs, **kwargs):
    config = TrainConfig(epochs=epochs, batch_size=8, learning_rate=3e-3, **kwargs)
    return train(lambda: build_model(**TINY), data[0], data[1], config, folder, progress=False)


def test_loss_decreases_and_history_is_written(data, tmp_path):
    result = _train(data, tmp_path, epochs=4)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert result.info["best_val_loss"] == pytest.approx(history["val_loss"].min())


def test_resume_continues_from_the_saved_epoch(data, tmp_path):
    _train(data, tmp_path / "interrupted", epochs=2)  # as if the run of 4 epochs stopped after epoch 2
    resumed = _train(data, tmp_path / "interrupted", epochs=4)
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    straight = _train(data, tmp_path / "straight", epochs=4)
    # the resumed run sees the same batches and optimizer state: the same losses as an uninterrupted one
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=2e-3)


def test_time_budget_stops_cleanly_after_a_completed_epoch(data, tmp_path):
    result = _train(data, tmp_path, epochs=50, time_budget_min=1e-4)
    assert result.stopped_by_budget and len(result.history) == 1
    assert (tmp_path / "checkpoint.keras").is_file()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="lr_schedule 'linear'"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="strategy 'tpu'"):
        TrainConfig(strategy="tpu")
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=2)
    with pytest.raises(ValueError, match="clip_norm"):
        TrainConfig(clip_norm=-1)


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
    constant = TrainConfig(epochs=10, learning_rate=1e-3)
    assert learning_rate_schedule(constant, 20) == 1e-3  # a plain float: no schedule object needed
    warm_constant = TrainConfig(epochs=10, learning_rate=1e-3, warmup_epochs=0.5)  # 10 warm-up steps
    np.testing.assert_allclose(_rates(warm_constant, 20, [0, 5, 10, 100, 199]), [0, 5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-5)
    warm_cosine = TrainConfig(epochs=10, learning_rate=1e-3, lr_schedule="cosine", warmup_epochs=1)
    rates = _rates(warm_cosine, 20, [0, 10, 20, 110, 200])
    np.testing.assert_allclose(rates[:3], [0, 5e-4, 1e-3], rtol=1e-5)
    # after the warm-up the cosine runs over the remaining 180 steps: half-way at step 110, 1 % at the end
    np.testing.assert_allclose(rates[3:], [1e-3 * (0.01 + 0.99 * 0.5), 1e-5], rtol=1e-4)
    cosine = TrainConfig(epochs=10, learning_rate=1e-3, lr_schedule="cosine")
    np.testing.assert_allclose(_rates(cosine, 20, [0, 100, 200]), [1e-3, 1e-3 * 0.505, 1e-5], rtol=1e-4)


def test_gradient_clipping_is_set_on_the_optimizer_only_when_asked():
    clipped, free = build_model(**TINY), build_model(**TINY)
    compile_model(clipped, TrainConfig(clip_norm=0.5), steps_per_epoch=3)
    compile_model(free, TrainConfig(), steps_per_epoch=3)
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
    from mrsisr.network.train import TrainConfig, train
    assert tf.distribute.MirroredStrategy().num_replicas_in_sync == 2
    config = TrainConfig(epochs=3, batch_size=8, learning_rate=3e-3, strategy="mirrored")
    result = train(lambda: build_model(**TINY), smooth_maps(24, 2), smooth_maps(8, 3), config,
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
