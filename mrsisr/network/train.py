"""Training of the super-resolution network on numpy arrays: augmentation, checkpoints, resume, time budget.

The loop calls ``model.fit`` one epoch at a time on arrays that this module shuffles and augments in numpy
(no ``tf.data``), so it runs under every Keras backend. Each batch gets one random rotation by a multiple of
90 degrees and one random left-right flip, the same for map, guide and target, drawn from a generator
seeded by ``(seed, epoch)``: an interrupted and resumed run sees exactly the batches an uninterrupted run
would. After each epoch the model (with its optimizer state) and the history are written atomically to
``checkpoint_dir``; :func:`train` called again with the same folder resumes after the last saved epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mrsisr.study.atomic import atomic_path, save_json, save_text

STRATEGIES = ("default", "mirrored", "multiworker")
SCHEDULES = ("constant", "cosine")
CHECKPOINT = "checkpoint.keras"
BEST = "best.keras"
STATE = "state.json"


@dataclass
class TrainConfig:
    """Training settings (the paper: log-cosh loss, Adam, batch 24, lr 1e-5 constant, 100 epochs)."""

    epochs: int = 100
    batch_size: int = 24
    learning_rate: float = 1e-5
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    clip_norm: float = 0.0
    time_budget_min: float = 0.0
    seed: int = 0
    strategy: str = "default"
    jit_compile: bool = False

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(
                f"epochs and batch_size must be >= 1 and learning_rate > 0, got {self.epochs}, "
                f"{self.batch_size}, {self.learning_rate}"
            )
        if not 0 <= self.warmup_epochs < self.epochs or self.clip_norm < 0:
            raise ValueError(
                f"warmup_epochs must lie in [0, epochs) and clip_norm be >= 0, got {self.warmup_epochs} "
                f"and {self.clip_norm}"
            )


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model (lowest validation loss) and the per-epoch history."""

    model: keras.Model
    history: pd.DataFrame
    stopped_by_budget: bool = False
    info: dict = field(default_factory=dict)


def augment_batch(
    lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Apply one random rot90 (k in 0..3) and one random flip to every array of a batch ``(B, H, W)``."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))

    def transform(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        a = np.rot90(a, k, axes=(1, 2))
        return np.ascontiguousarray(a[:, :, ::-1] if flip else a)

    return transform(lr), transform(guide), transform(hr)


def epoch_arrays(
    lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray, batch_size: int, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Shuffle the training set and augment it batch by batch, reproducibly from ``(seed, epoch)``."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lr))
    parts = []
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start : start + batch_size])
        parts.append(augment_batch(lr[index], None if guide is None else guide[index], hr[index], rng))
    stacked = [None if parts[0][i] is None else np.concatenate([p[i] for p in parts]) for i in range(3)]
    return stacked[0], stacked[1], stacked[2]


def model_inputs(lr: np.ndarray, guide: np.ndarray | None) -> dict[str, np.ndarray]:
    """The input dictionary of the network for ``(N, h, w)`` arrays."""
    inputs = {"lr": np.asarray(lr, np.float32)[..., None]}
    if guide is not None:
        inputs["guide"] = np.asarray(guide, np.float32)[..., None]
    return inputs


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


class _BatchProgress(keras.callbacks.Callback):
    """A tqdm bar over the batches of one epoch, showing the running loss."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4g}")


def _fresh_state() -> dict:
    return {"epoch": 0, "history": [], "seconds": 0.0, "best_val_loss": None}


def _read_state(folder: Path) -> dict:
    path = folder / STATE
    if not path.is_file():
        return _fresh_state()
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"checkpoint state {path} is corrupt: {error}") from error


def _save_model(model: keras.Model, path: Path) -> None:
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


@contextlib.contextmanager
def _progress(total: int, enabled: bool, desc: str) -> Iterator[tqdm]:
    bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()


def train(
    build: Callable[[], keras.Model],
    train_data: tuple[np.ndarray, np.ndarray | None, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray | None, np.ndarray],
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume training of) a network.

    Parameters
    ----------
    build : callable
        ``build() -> keras.Model``, called inside the distribution scope when starting afresh.
    train_data, val_data : tuple
        ``(lr, guide, hr)`` arrays ``(N, 32, 32)``, ``(N, 128, 128)`` or None (unguided), ``(N, 128, 128)``.
    config : TrainConfig
        Epochs, batch size, learning rate and schedule, time budget, seed, strategy, XLA.
    checkpoint_dir : path-like
        Folder for ``checkpoint.keras``, ``best.keras``, ``state.json`` and ``history.csv``. A folder
        holding a checkpoint is resumed from its last completed epoch.
    progress : bool
        Show tqdm bars (epochs and batches).

    Returns
    -------
    TrainResult
        The model with the lowest validation loss, the history (``epoch``, ``loss``, ``val_loss``,
        ``learning_rate``, ``seconds``), whether the time budget stopped training, and timing info.
    """
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lr, guide, hr = train_data
    if len(lr) == 0 or len(val_data[0]) == 0:
        raise ValueError(f"train and val sets must not be empty (got {len(lr)} and {len(val_data[0])} maps)")
    keras.utils.set_random_seed(config.seed)
    steps = -(-len(lr) // config.batch_size)
    state = _read_state(folder)
    with distribution_scope(config.strategy):
        if state["epoch"] > 0 and (folder / CHECKPOINT).is_file():
            model = keras.saving.load_model(folder / CHECKPOINT, safe_mode=True)
        else:
            state = _fresh_state()
            model = build()
            compile_model(model, config, steps)
    val_inputs, val_target = model_inputs(val_data[0], val_data[1]), val_data[2][..., None]
    budget_s = 60.0 * config.time_budget_min
    started = time.perf_counter() - state["seconds"]
    stopped_by_budget = False
    epochs = tqdm(range(state["epoch"], config.epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in epochs:
        x_lr, x_guide, y = epoch_arrays(lr, guide, hr, config.batch_size, config.seed, epoch)
        epoch_start = time.perf_counter()
        with _progress(steps, progress, f"epoch {epoch + 1}") as bar:
            fit = model.fit(
                model_inputs(x_lr, x_guide),
                y[..., None],
                batch_size=config.batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
                validation_data=(val_inputs, val_target),
                callbacks=[_BatchProgress(bar)],
            )
        seconds = time.perf_counter() - epoch_start
        row = {
            "epoch": epoch + 1,
            "loss": float(fit.history["loss"][-1]),
            "val_loss": float(fit.history["val_loss"][-1]),
            "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "seconds": seconds,
        }
        state["history"].append(row)
        if state["best_val_loss"] is None or row["val_loss"] < state["best_val_loss"]:
            state["best_val_loss"] = row["val_loss"]
            _save_model(model, folder / BEST)
        _save_model(model, folder / CHECKPOINT)
        state.update(epoch=epoch + 1, seconds=time.perf_counter() - started)
        save_text(folder / "history.csv", pd.DataFrame(state["history"]).to_csv(index=False))
        save_json(folder / STATE, state)
        epochs.set_postfix(loss=f"{row['loss']:.4g}", val_loss=f"{row['val_loss']:.4g}")
        if budget_s > 0 and epoch + 1 < config.epochs and state["seconds"] + seconds > budget_s:
            stopped_by_budget = True  # the next epoch would not finish within the budget
            break
    epochs.close()
    history = pd.DataFrame(state["history"])
    best = keras.saving.load_model(folder / BEST, safe_mode=True)
    info = {
        "epochs_run": int(state["epoch"]),
        "seconds": float(state["seconds"]),
        "best_val_loss": float(state["best_val_loss"]),
        # median over epochs of training maps per second of epoch time (validation included; the first
        # epoch of a session also traces the graph, the median leaves that out)
        "train_samples_per_s": float(np.median(len(lr) / history["seconds"].clip(lower=1e-9))),
    }
    return TrainResult(model=best, history=history, stopped_by_budget=stopped_by_budget, info=info)
