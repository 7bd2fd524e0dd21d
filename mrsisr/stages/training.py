"""Stage ``training`` (notebook 03): train the network on the current synthesis output, or reuse a cached model.

The output folder is keyed by the training parameters and the synthesis output's key. An interrupted run
leaves its checkpoints in ``<key>/checkpoints/``; running the stage again with the same parameters resumes
from there. Artifacts: ``model.keras`` (the lowest validation loss), ``history.csv`` and ``training.json``,
exported to ``runs/<profile>/training/``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, fields

import keras
import pandas as pd
from pydantic import BaseModel

from mrsisr.network.model import build_model, count_parameters, load_model
from mrsisr.network.train import TrainConfig, train
from mrsisr.stages import get_stage
from mrsisr.stages.synthesis import load_split
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, save_json

STAGE = get_stage("training")
# Bumped whenever the code trains a different model for the same parameters (architecture, training or
# validation numerics), so that no stale model is reused.
CACHE_VERSION = 6
ARCHITECTURE = ("width", "mid_width", "n_pairs", "use_gdfn", "guided", "dtype_policy", "erb_form")
EXPORTS = ("model.keras", "history.csv", "training.json")


@dataclass(frozen=True)
class TrainingResult:
    """What notebook 03 shows.

    Attributes
    ----------
    model : keras.Model
        The trained network (lowest validation loss).
    history : DataFrame
        Per epoch: ``epoch, loss, val_loss, learning_rate, seconds``.
    summary : dict
        ``epochs_run, seconds, best_val_loss, train_samples_per_s, n_params, stopped_by_budget, architecture``.
    """

    output: cache.StageOutput
    model: keras.Model
    history: pd.DataFrame
    summary: dict

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        names = ("n_params", "epochs_run", "best_val_loss")
        values = {name: self.summary[name] for name in names}
        extra = {
            "erb_form": self.summary["architecture"]["erb_form"],
            "samples_per_s": self.summary["train_samples_per_s"],
        }
        return values | extra | {"minutes": self.summary["seconds"] / 60}


def architecture(params: BaseModel) -> dict:
    """The keyword arguments of :func:`mrsisr.network.model.build_model` that ``params`` set."""
    return {name: getattr(params, name) for name in ARCHITECTURE}


def train_config(params: BaseModel) -> TrainConfig:
    """The training settings that ``params`` set (validated already by the parameter model)."""
    names = {"lr_schedule": "learning_rate_schedule"}  # TrainConfig's name -> the parameter's
    return TrainConfig(**{f.name: getattr(params, names.get(f.name, f.name)) for f in fields(TrainConfig)})


def run(run_dir: str | os.PathLike, params: BaseModel, progress: bool = True) -> TrainingResult:
    """Train (or reuse) the network of ``params`` on the current synthesis output, and publish it.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    Parameters
    ----------
    progress : bool
        Show progress bars.
    """
    output = cache.open_stage(run_dir, STAGE, params.model_dump(), CACHE_VERSION)
    if not output.complete:
        dataset = cache.current(run_dir, "synthesis").path
        guided = params.guided
        splits = {}
        for split in ("train", "val"):
            lr, guide, hr, _ = load_split(dataset, split)
            splits[split] = (lr, guide if guided else None, hr)
        shape = architecture(params)
        result = train(
            lambda: build_model(**shape),
            splits["train"],
            splits["val"],
            train_config(params),
            output.path / "checkpoints",
            progress=progress,
        )
        with atomic_path(output.path / "model.keras", suffix=".keras") as tmp:
            result.model.save(tmp)
        shutil.copyfile(output.path / "checkpoints" / "history.csv", output.path / "history.csv")
        summary = result.info | {
            "n_params": count_parameters(result.model),
            "stopped_by_budget": result.stopped_by_budget,
            "architecture": shape,
        }
        save_json(output.path / "training.json", summary)
        output.mark_complete()
    cache.publish(run_dir, output, exports=EXPORTS)
    return read_result(output)


def read_result(output: cache.StageOutput) -> TrainingResult:
    """Read a complete training output: the model, its history and the training summary."""
    return TrainingResult(
        output=output,
        model=load_model(output.path / "model.keras"),
        history=pd.read_csv(output.path / "history.csv"),
        summary=cache.read_json(output.path / "training.json"),
    )
