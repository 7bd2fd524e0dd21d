"""Training of the super-resolution network with ``model.fit`` on numpy arrays, resumable after a kill.

Batches come from :class:`EpochBatches`, a ``keras.utils.PyDataset`` that shuffles and augments in numpy
(no ``tf.data``, so every Keras backend runs it): batch ``i`` of epoch ``e`` is a pure function of
``(seed, e, i)``. With ``patch_size`` > 0 it serves random low-resolution windows of the maps with the matching
guide and target windows (EDSR-style patch training; the network is fully convolutional), optionally with the
loss on their centre only (``patch_margin``); validation always runs on the full maps.
Each epoch's batches are handed to ``model.fit`` as arrays, in order (one call per epoch):
on a 2-core CPU, ``fit`` over the PyDataset itself, which Keras feeds through ``tf.data``, trained at half
the speed. Keras callbacks do the bookkeeping in ``checkpoint_dir``: ``CSVLogger`` writes
``history.csv``, ``ModelCheckpoint`` keeps ``best.keras`` (lowest validation loss), a tqdm bar shows the
epochs, and a time-budget callback stops after the last epoch that fits. Last after each epoch,
``checkpoint.keras`` (model and optimizer) is replaced atomically: it is the commit point. :func:`train`
called again with the same folder resumes after the epoch that checkpoint holds, whatever was written after
it; since that epoch's batches and weights replay bit for bit, the resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mrsisr.network.augment import augment_batch, centre_weights, crop_patches, drop_guides, perturb_guides
from mrsisr.network.model import model_inputs
from mrsisr.study.atomic import atomic_path, save_text

STRATEGIES = ("default", "mirrored", "multiworker")
SCHEDULES = ("constant", "cosine")
CHECKPOINT = "checkpoint.keras"
BEST = "best.keras"
HISTORY = "history.csv"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; their defaults and meanings live in ``profiles.yaml`` (section ``training``).

    ``guide_augment`` randomises each training guide (:func:`mrsisr.network.augment.perturb_guides`);
    ``guide_dropout`` is the probability that a training sample's guide is replaced by zeros. ``patch_size``
    (low-resolution pixels; 0: full maps) and ``patch_margin`` (low-resolution pixels at each side of a patch
    left out of the loss) set patch training (:class:`EpochBatches`).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str
    warmup_epochs: float
    clip_norm: float
    time_budget_min: float
    seed: int
    strategy: str
    jit_compile: bool
    guide_augment: bool
    guide_dropout: float
    patch_size: int
    patch_margin: int


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model (lowest validation loss) and the per-epoch history."""

    model: keras.Model
    history: pd.DataFrame
    stopped_by_budget: bool = False
    info: dict = field(default_factory=dict)


class EpochBatches(keras.utils.PyDataset):
    """The training set as shuffled, augmented batches; set :attr:`epoch` before an epoch starts.

    Epoch ``e`` visits the maps in the order of a permutation drawn from ``(seed, e)``; batch ``i`` gets one
    rot90 and one flip (:func:`~mrsisr.network.augment.augment_batch`) and, when asked, randomised and
    dropped guides, all drawn from ``(seed, e, i)``.

    With ``patch_size`` ``p`` > 0, a sample is a random ``p`` x ``p`` window of a low-resolution map with its
    ``4p`` x ``4p`` guide and target windows (:func:`~mrsisr.network.augment.crop_patches`, corners drawn from
    ``(seed, e, i)`` by a generator of their own, so full-map batches are those of a run without patches). An
    epoch then takes :attr:`patches_per_map` windows of every map, about one pass over the maps' area. With
    ``patch_margin`` ``m`` > 0, each batch also carries per-pixel loss weights that leave out the ``4m`` target
    pixels along every edge: there the network's k-space skip, which treats its input as periodic, differs most
    from the same region of the full map.

    Parameters
    ----------
    lr, guide, hr : ndarray
        ``(N, 32, 32)``, ``(N, 128, 128)`` or None (unguided), ``(N, 128, 128)``.
    config : TrainConfig
        Its ``batch_size``, ``seed``, ``guide_augment`` and ``guide_dropout`` are used.
    """

    def __init__(self, lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray, config: TrainConfig):
        super().__init__()
        self.lr, self.guide, self.hr, self.config = lr, guide, hr, config
        self.epoch = 0
        patch, margin, side = config.patch_size, config.patch_margin, min(lr.shape[1:])
        if patch < 0 or patch > side or margin < 0 or (margin and not 2 * margin < patch):
            raise ValueError(
                f"patch_size {patch} and patch_margin {margin} do not fit {side}x{side} maps: need "
                f"0 <= patch_size <= {side} and, with a margin, 0 <= 2 * patch_margin < patch_size"
            )
        area = lr.shape[1] * lr.shape[2]
        self.patches_per_map = max(1, round(area / patch**2)) if patch else 1
        self.map_equivalents = len(lr) * self.patches_per_map * (patch**2 / area if patch else 1.0)
        factor = hr.shape[1] // lr.shape[1]
        self.weights = centre_weights(factor * patch, factor * margin) if patch and margin else None

    def __len__(self) -> int:
        return -(-len(self.lr) * self.patches_per_map // self.config.batch_size)

    def __getitem__(self, index: int) -> tuple:
        """Batch ``index`` of the current epoch: ``(inputs, target)``, plus loss weights with a patch margin."""
        seed, size = self.config.seed, self.config.batch_size
        order = np.random.default_rng([seed, self.epoch, 0]).permutation(len(self.lr) * self.patches_per_map)
        rows = np.sort(order[index * size : (index + 1) * size] % len(self.lr))
        rng = np.random.default_rng([seed, self.epoch, 1, index])
        lr, guide, hr = self.lr[rows], None if self.guide is None else self.guide[rows], self.hr[rows]
        if self.config.patch_size:
            corners = np.random.default_rng([seed, self.epoch, 2, index])
            lr, guide, hr = crop_patches(lr, guide, hr, self.config.patch_size, corners)
        lr, guide, hr = augment_batch(lr, guide, hr, rng)
        if guide is not None and self.config.guide_augment:
            guide = perturb_guides(guide, rng)
        if guide is not None:
            guide = drop_guides(guide, rng, self.config.guide_dropout)
        batch = (model_inputs(lr, guide), hr[..., None])
        return batch if self.weights is None else (*batch, np.broadcast_to(self.weights, hr.shape))

    def epoch_arrays(self, epoch: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        """Every batch of ``epoch``, in order, concatenated: ``fit`` with this ``batch_size`` sees the same batches.

        Returns ``(inputs, target, loss weights or None)``.
        """
        self.epoch = epoch
        parts = [self[index] for index in range(len(self))]
        inputs = {name: np.concatenate([part[0][name] for part in parts]) for name in parts[0][0]}
        weights = None if self.weights is None else np.concatenate([part[2] for part in parts])
        return inputs, np.concatenate([part[1] for part in parts]), weights


def distribution_scope(strategy: str) -> contextlib.AbstractContextManager:
    """Return the ``strategy.scope()`` to build and compile the model in (TensorFlow backend only).

    Raises
    ------
    ValueError
        For ``mirrored``/``multiworker`` under another backend, or an unknown strategy name.
    """
    if strategy == "default":
        return contextlib.nullcontext()
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"strategy {strategy!r} needs KERAS_BACKEND=tensorflow (running under {keras.backend.backend()!r}); "
            "use strategy 'default' under JAX or PyTorch"
        )
    import tensorflow as tf  # only the TensorFlow distribution API, never inside the model

    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy().scope()
    if "TF_CONFIG" not in os.environ:
        raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable (cluster and task)")
    return tf.distribute.MultiWorkerMirroredStrategy().scope()


def learning_rate_schedule(
    config: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of ``config``: a linear warm-up over ``warmup_epochs``, then constant or cosine.

    A cosine decays to 1 % of ``learning_rate`` at the end of the last epoch. Both shapes are Keras'
    ``CosineDecay`` (a constant rate is a cosine with ``alpha=1``), so they are saved with the optimizer.
    """
    if config.lr_schedule not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; valid: {', '.join(SCHEDULES)}")
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.lr_schedule == "constant" and warmup == 0:
        return config.learning_rate
    alpha = 0.01 if config.lr_schedule == "cosine" else 1.0
    decay_steps = max(1, config.epochs * steps_per_epoch - warmup)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=alpha, warmup_target=config.learning_rate, warmup_steps=warmup
    )


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    """Compile ``model`` with Adam (gradients clipped to ``clip_norm`` when > 0), the log-cosh loss and the
    learning-rate schedule of :func:`learning_rate_schedule`."""
    clipping = {"global_clipnorm": config.clip_norm} if config.clip_norm > 0 else {}
    optimizer = keras.optimizers.Adam(learning_rate_schedule(config, steps_per_epoch), **clipping)
    model.compile(optimizer, loss=keras.losses.LogCosh(), jit_compile=config.jit_compile)


class _EpochClock(keras.callbacks.Callback):
    """Point the batches at the starting epoch; add the epoch's ``seconds`` and ``learning_rate`` to its logs."""

    def __init__(self, batches: EpochBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = time.perf_counter() - self.started
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class _History(keras.callbacks.CSVLogger):
    """``CSVLogger`` numbering epochs from 1, as epochs completed (Keras numbers them from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class _TimeBudget(keras.callbacks.Callback):
    """Stop after an epoch when the next one, as long as it, would not finish within ``budget_s``."""

    def __init__(self, budget_s: float, spent_s: float, epochs: int):
        super().__init__()
        self.budget_s, self.spent_s, self.epochs, self.stopped = budget_s, spent_s, epochs, False
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = self.spent_s + time.perf_counter() - self.started
        if self.budget_s > 0 and epoch + 1 < self.epochs and elapsed + logs["seconds"] > self.budget_s:
            self.model.stop_training = self.stopped = True


class _EpochBar(keras.callbacks.Callback):
    """Advance a tqdm bar over epochs, showing the losses."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4g}", val_loss=f"{logs['val_loss']:.4g}")


class _Commit(keras.callbacks.Callback):
    """Replace ``path`` atomically by the model and its optimizer state: the epoch a resume starts after."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.path, suffix=".keras") as tmp:
            self.model.save(tmp)


def _resume(folder: Path, steps_per_epoch: int) -> tuple[keras.Model | None, pd.DataFrame]:
    """Load the checkpoint of ``folder`` (None without one) and the history of its epochs.

    Rows the history gained after the checkpoint (an epoch interrupted while its callbacks wrote) are cut,
    so ``history.csv`` holds exactly the committed epochs.
    """
    path = folder / CHECKPOINT
    if not path.is_file():
        (folder / HISTORY).unlink(missing_ok=True)
        return None, pd.DataFrame()
    model = keras.saving.load_model(path, safe_mode=True)
    epochs, partial = divmod(int(keras.ops.convert_to_numpy(model.optimizer.iterations)), steps_per_epoch)
    lines = (folder / HISTORY).read_text().splitlines(keepends=True) if (folder / HISTORY).is_file() else []
    if partial or len(lines) < epochs + 1:
        raise ValueError(
            f"checkpoint {path} does not match this training set or its {HISTORY} "
            f"({partial} steps past epoch {epochs}, {max(len(lines) - 1, 0)} history rows)"
        )
    save_text(folder / HISTORY, "".join(lines[: epochs + 1]))
    return model, pd.read_csv(folder / HISTORY)


def train(
    build: Callable[[], keras.Model],
    train_data: tuple[np.ndarray, np.ndarray | None, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray | None, np.ndarray],
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike,
    progress: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train (or resume training of) a network.

    Parameters
    ----------
    build : callable
        ``build() -> keras.Model``, called inside the distribution scope when starting afresh.
    train_data, val_data : tuple
        ``(lr, guide, hr)`` arrays ``(N, 32, 32)``, ``(N, 128, 128)`` or None (unguided), ``(N, 128, 128)``.
    config : TrainConfig
        Epochs, batch size, learning rate and schedule, time budget, seed, strategy, XLA, guide randomisation,
        patch training.
    checkpoint_dir : path-like
        Folder for ``checkpoint.keras``, ``best.keras`` and ``history.csv``. A folder holding a checkpoint
        is resumed after the epoch it holds.
    progress : bool
        Show a tqdm bar over the epochs.
    callbacks : sequence of keras.callbacks.Callback
        Further callbacks, called after this module's own (after the epoch's checkpoint is committed).

    Returns
    -------
    TrainResult
        The model with the lowest validation loss, the history (``epoch``, ``learning_rate``, ``loss``,
        ``seconds``, ``val_loss``), whether the time budget stopped training, and timing info.
    """
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if len(train_data[0]) == 0 or len(val_data[0]) == 0:
        raise ValueError(f"train and val sets must not be empty (got {len(train_data[0])} and {len(val_data[0])} maps)")
    keras.utils.set_random_seed(config.seed)
    batches = EpochBatches(*train_data, config)
    with distribution_scope(config.strategy):
        model, history = _resume(folder, len(batches))
        if model is None:
            model = build()
            compile_model(model, config, len(batches))
    if config.patch_size:
        model.input_spec = None  # train on patches, validate on full maps: the layers are shape-agnostic
    best = float(history["val_loss"].min()) if len(history) else None
    spent = float(history["seconds"].sum()) if len(history) else 0.0
    budget = _TimeBudget(60.0 * config.time_budget_min, spent, config.epochs)
    validation = (model_inputs(*val_data[:2]), val_data[2][..., None])
    with tqdm(total=config.epochs, initial=len(history), desc="epochs", disable=not progress, leave=False) as bar:
        hooks = [
            _EpochClock(batches),
            _History(folder / HISTORY, append=True),
            keras.callbacks.ModelCheckpoint(folder / BEST, save_best_only=True, initial_value_threshold=best),
            budget,
            _EpochBar(bar),
            _Commit(folder / CHECKPOINT),
            *callbacks,
        ]
        for epoch in range(len(history), config.epochs):
            # one fit call per epoch on the epoch's arrays: on a 2-core CPU, fit over the PyDataset itself
            # (which Keras feeds through tf.data) ran at half the speed of these same batches as arrays
            inputs, target, weights = batches.epoch_arrays(epoch)
            model.fit(
                inputs,
                target,
                sample_weight=weights,
                batch_size=config.batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
                validation_data=validation,
                callbacks=hooks,
            )
            if budget.stopped:
                break
    history = pd.read_csv(folder / HISTORY)
    info = {
        "epochs_run": len(history),
        "seconds": budget.spent_s + time.perf_counter() - budget.started,
        "best_val_loss": float(history["val_loss"].min()),
        # median over epochs of training maps (map-equivalents of patches) per second of epoch time
        # (validation included; the first epoch of a session also traces the graph, the median leaves that out)
        "train_samples_per_s": float(np.median(batches.map_equivalents / history["seconds"].clip(lower=1e-9))),
    }
    model = keras.saving.load_model(folder / BEST, safe_mode=True)
    return TrainResult(model=model, history=history, stopped_by_budget=budget.stopped, info=info)
