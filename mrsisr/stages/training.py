"""Stage ``model`` (notebook 03): train the network on the current dataset, or reuse a cached model.

The output folder is keyed by the training parameters and the dataset's key. An interrupted run leaves its
checkpoints in ``<key>/checkpoints/``; running the stage again with the same parameters resumes from there.
Artifacts (CONTRIBUTING.md): ``model.keras`` (the lowest validation loss), ``history.csv`` and
``training.json``, exported to ``runs/<profile>/model/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mrsisr.network.model import build_model, count_parameters, load_model
from mrsisr.network.train import TrainConfig, train
from mrsisr.stages.synthesis import load_split
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, save_json

STAGE = "model"
UPSTREAM = "dataset"
ARCHITECTURE = ("width", "mid_width", "n_pairs", "use_gdfn", "guided", "dtype_policy")
TRAINING = (
    "epochs", "batch_size", "learning_rate", "lr_schedule", "warmup_epochs", "clip_norm", "time_budget_min",
    "strategy", "jit_compile",
)
PARAMS = ("seed", *ARCHITECTURE, *TRAINING)
EXPORTS = ("model.keras", "history.csv", "training.json")
# Bumped whenever the code trains a different model for the same parameters (architecture, training or validation
# numerics), so no stale model is reused.
ARCHITECTURE_VERSION = 4


def stage_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that key the ``model`` cache (taken from a full profile)."""
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"model stage parameters missing: {', '.join(missing)}")
    return {name: params[name] for name in PARAMS} | {"architecture_version": ARCHITECTURE_VERSION}


def _load_split(dataset_dir, split: str, guided: bool):
    lr, guide, hr, _ = load_split(dataset_dir, split)
    return lr, (guide if guided else None), hr


def run_training_stage(
    run_dir: str | os.PathLike, params: Mapping[str, Any], progress: bool = True
) -> cache.StageOutput:
    """Train (or reuse) the ``model`` stage output of ``params`` under ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder (``runs/<profile>``), holding the ``dataset`` stage output.
    params : mapping
        Profile parameters; those in :data:`PARAMS` are used.
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    mrsisr.study.cache.StageOutput
        The complete, published output folder.
    """
    keyed = stage_params(params)
    dataset = cache.current(run_dir, UPSTREAM)
    output = cache.stage_output(run_dir, STAGE, keyed, upstream=[dataset.key])
    if not output.complete:
        guided = bool(keyed["guided"])
        config = TrainConfig(
            epochs=int(keyed["epochs"]),
            batch_size=int(keyed["batch_size"]),
            learning_rate=float(keyed["learning_rate"]),
            lr_schedule=str(keyed["lr_schedule"]),
            warmup_epochs=float(keyed["warmup_epochs"]),
            clip_norm=float(keyed["clip_norm"]),
            time_budget_min=float(keyed["time_budget_min"]),
            seed=int(keyed["seed"]),
            strategy=str(keyed["strategy"]),
            jit_compile=bool(keyed["jit_compile"]),
        )
        architecture = {name: keyed[name] for name in ARCHITECTURE}
        result = train(
            lambda: build_model(**architecture),
            _load_split(dataset.path, "train", guided),
            _load_split(dataset.path, "val", guided),
            config,
            output.path / "checkpoints",
            progress=progress,
        )
        with atomic_path(output.path / "model.keras", suffix=".keras") as tmp:
            result.model.save(tmp)
        shutil.copyfile(output.path / "checkpoints" / "history.csv", output.path / "history.csv")
        summary = result.info | {
            "n_params": count_parameters(result.model),
            "stopped_by_budget": result.stopped_by_budget,
            "architecture": architecture,
        }
        save_json(output.path / "training.json", summary)
        output.mark_complete()
    cache.publish(run_dir, output, exports=EXPORTS)
    return output


def read_training(output: cache.StageOutput) -> tuple[Any, pd.DataFrame, dict]:
    """Return the trained model, its history and the training summary of a complete stage output."""
    model = load_model(output.path / "model.keras")
    history = pd.read_csv(output.path / "history.csv")
    summary = json.loads((output.path / "training.json").read_text())
    return model, history, summary
