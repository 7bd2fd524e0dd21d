"""Stage ``beyond`` (notebook 06): beyond the paper — ablations, peer networks, seeds and stress tests.

One harness for every comparison the paper does not make: each network of ``beyond_variants``
(:data:`mrsisr.network.variants.VARIANTS`: the study's network, its ablations, the authors' published design
and a two-encoder UNet peer) is trained on the same synthesis output with the training stage's recipe (its
recorded parameters), the same number of epochs (``beyond_epochs``) and the same time budget
(``beyond_minutes``), then scored on the same test split with the metrics of the evaluation stage. The
study's network is also trained with ``beyond_seeds`` seeds, so a reader can tell which differences exceed
seed noise. The stress tests (:mod:`mrsisr.scoring.stress`) score the training stage's model under input
noise, other low-resolution simulations, guide misregistration, 8x upscaling and by tumour grade.

Each trained network has its own cache folder, ``runs/<profile>/beyond/variants/<key>/``, keyed by the
variant, its seed, epochs and budget and the keys of the training and synthesis outputs: adding a variant
trains only that one. With ``beyond_train_fraction`` below 1 every network trains on the same
seeded share of the training maps (validation and test maps are never cut), so that the stage fits a short
budget. The stage's own folder holds the tables: ``runs.csv`` (one row per trained network),
``run_metrics.csv`` (per test map) and ``stress.csv`` (per test map and condition).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mrsisr.network.model import count_parameters, is_guided, load_model, predict
from mrsisr.network.train import train
from mrsisr.network.variants import VARIANTS
from mrsisr.scoring.ablation import REFERENCE, SCORES, ablation_table
from mrsisr.scoring.metrics import per_map_metrics
from mrsisr.scoring.stress import stress_summary, stress_tests
from mrsisr.stages import get_stage
from mrsisr.stages.synthesis import load_split
from mrsisr.stages.training import train_config
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, save_json, save_text
from mrsisr.study.profiles import stage_parameters

STAGE = get_stage("beyond")
CACHE_VERSION = 1
VARIANT_CACHE_VERSION = 1
VARIANT_FOLDER = "beyond/variants"
EXPORTS = ("runs.csv", "run_metrics.csv", "stress.csv")
RUN_COLUMNS = ("variant", "seed", "description", "n_params", "epochs_run", "seconds", "stopped_by_budget", *SCORES)


@dataclass(frozen=True)
class BeyondResult:
    """What notebook 06 shows.

    Attributes
    ----------
    runs : DataFrame
        One row per trained network: ``variant, seed, description, n_params, epochs_run, seconds,
        stopped_by_budget`` and the mean test ``psnr, ssim, lpips``.
    run_metrics : DataFrame
        Per test map and trained network: ``variant, seed, subject, kind, grade`` and every metric.
    stress : DataFrame
        The stress tests of the training stage's model, per test map (:func:`mrsisr.scoring.stress.stress_tests`).
    """

    output: cache.StageOutput
    runs: pd.DataFrame
    run_metrics: pd.DataFrame
    stress: pd.DataFrame

    @property
    def stress_summary(self) -> pd.DataFrame:
        """Mean and SD per factor, level and method (:func:`mrsisr.scoring.stress.stress_summary`)."""
        return stress_summary(self.stress)

    @property
    def ablation(self) -> pd.DataFrame:
        """The comparison table (:func:`mrsisr.scoring.ablation.ablation_table`)."""
        return ablation_table(self.runs, self.run_metrics)

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        table = self.ablation.set_index("variant")
        values = {"n_runs": len(self.runs), "n_variants": len(table)}
        if REFERENCE in table.index:
            values["seed_sd_psnr"] = float(table.loc[REFERENCE, "psnr_seed_sd"])
        for name in table.index:
            values[f"psnr_gain_{name}"] = float(table.loc[name, "psnr_difference"])
        return values


def planned_runs(params: BaseModel) -> list[tuple[str, int]]:
    """The (variant, seed) pairs to train: every variant at the study's seed, then ``main`` at further seeds.

    Raises
    ------
    ValueError
        For a variant name that :data:`mrsisr.network.variants.VARIANTS` does not hold, listing the valid ones.
    """
    unknown = [name for name in params.beyond_variants if name not in VARIANTS]
    if unknown:
        raise ValueError(f"beyond_variants: unknown {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")
    runs = [(name, params.seed) for name in params.beyond_variants]
    if REFERENCE in params.beyond_variants:
        runs += [(REFERENCE, params.seed + k) for k in range(1, params.beyond_seeds)]
    return runs


def run(run_dir: str | os.PathLike, params: BaseModel, progress: bool = True) -> BeyondResult:
    """Train and score every planned network (or reuse them) and run the stress tests; publish the tables.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    Parameters
    ----------
    progress : bool
        Show progress bars while training.
    """
    runs = planned_runs(params)
    # predicting with many networks, shapes and guides retraces tf.functions by design; TensorFlow's warning
    # about it would fill the page
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    output = cache.open_stage(run_dir, STAGE, params.model_dump(), CACHE_VERSION)
    if not output.complete:
        training, synthesis = cache.current(run_dir, "training"), cache.current(run_dir, "synthesis")
        lr, guide, hr, meta = load_split(synthesis.path, "test")
        model = load_model(training.path / "model.keras")
        pixel_mm = float(synthesis.params["fov_mm"]) / float(synthesis.params["map_size"])
        stress = stress_tests(model, lr, guide, hr, meta, pixel_mm, synthesis.params["lowres_method"], params.seed)
        save_text(output.path / "stress.csv", stress.to_csv(index=False))
        rows, metrics = [], []
        for variant, seed in runs:
            folder = train_variant(run_dir, variant, seed, params, training, synthesis, progress)
            rows.append(cache.read_json(folder / "summary.json"))
            metrics.append(pd.read_csv(folder / "metrics.csv", dtype={"subject": str}))
        save_text(output.path / "runs.csv", pd.DataFrame(rows, columns=RUN_COLUMNS).to_csv(index=False))
        metrics = pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=["variant", "seed"])
        save_text(output.path / "run_metrics.csv", metrics.to_csv(index=False))
        output.mark_complete()
    cache.publish(run_dir, output, exports=EXPORTS)
    return read_result(output)


def training_subset(n_maps: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted indices of the training maps every network of the stage trains on: a seeded share of them.

    The subset depends on the study's seed only, so every network and every seed of ``main`` sees the same maps.
    """
    count = max(1, round(fraction * n_maps))
    return np.sort(np.random.default_rng([seed, n_maps]).permutation(n_maps)[:count])


def train_variant(
    run_dir: str | os.PathLike,
    variant: str,
    seed: int,
    params: BaseModel,
    training: cache.StageOutput,
    synthesis: cache.StageOutput,
    progress: bool = True,
) -> Path:
    """Train one network with the training stage's recipe and score it on the test split (or reuse it).

    Returns the network's cache folder, holding ``model.keras``, ``history.csv``, ``metrics.csv`` (per test
    map) and ``summary.json`` (one row of :attr:`BeyondResult.runs`).
    """
    spec = VARIANTS[variant]
    keyed = {
        "variant": variant,
        "kwargs": spec.kwargs,
        "tiny": params.beyond_tiny,
        "seed": seed,
        "epochs": params.beyond_epochs,
        "minutes": params.beyond_minutes,
        "train_fraction": params.beyond_train_fraction,
        "cache_version": VARIANT_CACHE_VERSION,
    }
    output = cache.stage_output(run_dir, VARIANT_FOLDER, keyed, {"training": training, "synthesis": synthesis})
    if output.complete:
        return output.path
    recipe = {name: value for name, value in training.params.items() if name != "cache_version"}
    config = dataclasses.replace(
        train_config(stage_parameters("training", recipe)),
        seed=seed,
        epochs=params.beyond_epochs or recipe["epochs"],
        time_budget_min=params.beyond_minutes,
    )
    network = spec.build(tiny=params.beyond_tiny)
    guided = is_guided(network)
    splits = {}
    for split in ("train", "val", "test"):
        lr, guide, hr, meta = load_split(synthesis.path, split)
        if split == "train":
            rows = training_subset(len(lr), params.beyond_train_fraction, params.seed)
            lr, guide, hr, meta = lr[rows], guide[rows], hr[rows], meta.iloc[rows]
        splits[split] = (lr, guide if guided else None, hr, meta)
    result = train(
        lambda: spec.build(tiny=params.beyond_tiny),
        splits["train"][:3],
        splits["val"][:3],
        config,
        output.path / "checkpoints",
        progress=progress,
    )
    lr, guide, hr, meta = splits["test"]
    scores = per_map_metrics(predict(result.model, lr, guide), hr)
    scores = pd.concat([meta[["subject", "grade", "slice", "kind"]].reset_index(drop=True), scores], axis=1)
    scores.insert(0, "seed", seed)
    scores.insert(0, "variant", variant)
    with atomic_path(output.path / "model.keras", suffix=".keras") as tmp:
        result.model.save(tmp)
    shutil.copyfile(output.path / "checkpoints" / "history.csv", output.path / "history.csv")
    shutil.rmtree(output.path / "checkpoints")
    save_text(output.path / "metrics.csv", scores.to_csv(index=False))
    summary = {  # one row of runs.csv (RUN_COLUMNS)
        "variant": variant,
        "seed": seed,
        "description": spec.description,
        "n_params": count_parameters(result.model),
        "epochs_run": int(result.info["epochs_run"]),
        "seconds": float(result.info["seconds"]),
        "stopped_by_budget": bool(result.stopped_by_budget),
    } | {name: float(scores[name].mean()) for name in SCORES}
    save_json(output.path / "summary.json", summary)
    output.mark_complete()
    return output.path


def read_result(output: cache.StageOutput) -> BeyondResult:
    """Read a complete beyond output into the result its notebook shows."""
    return BeyondResult(
        output=output,
        runs=pd.read_csv(output.path / "runs.csv"),
        run_metrics=pd.read_csv(output.path / "run_metrics.csv", dtype={"subject": str}),
        stress=pd.read_csv(output.path / "stress.csv"),
    )
