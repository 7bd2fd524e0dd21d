"""Stage ``beyond`` (notebook 06): beyond the paper — ablations, peer networks, seeds and stress tests.

One harness for every comparison the paper does not make: each network of ``beyond_variants``
(:data:`mrsisr.network.variants.VARIANTS`: the study's network, its ablations, the authors' published design
and a two-encoder UNet peer) is trained on the same synthesis output with the training stage's recipe (its
recorded parameters), the same number of epochs (``beyond_epochs``) and the same time budget
(``beyond_minutes``), then scored on the same test split with the metrics of the evaluation stage. The
study's network is also trained with ``beyond_seeds`` seeds, so a reader can tell which differences exceed
seed noise. The stress tests (:mod:`mrsisr.scoring.stress`) score the training stage's model under input
noise, other low-resolution simulations, guide misregistration, 8x upscaling and by tumour grade and size.

Each trained network has its own cache folder, ``runs/<profile>/beyond/variants/<key>/``, keyed by the
variant, its seed, epochs and budget and the keys of the training and synthesis outputs: adding a variant
trains only that one. With ``beyond_train_fraction`` below 1 every network trains on the same seeded share
of the training maps and picks its best epoch on the same share of the validation maps (the test maps are
never cut), so that the stage fits a short budget. A network of the study's own builder is trained in the
study's ERB form (the training stage's recorded ``erb_form``). Incomplete variant folders that this run does
not plan (left by killed runs with other settings) are removed when the stage runs; a planned network's
incomplete folder is kept, and its training resumes from its checkpoints.

When the evaluation stage scored real anatomy (its ``real_eval_root``), every trained network is also scored
on those maps, with the real FLAIR as guide. The evaluation stage keeps only its scores, not the maps, so the
maps are synthesised again with the same code and parameters
(:func:`mrsisr.scoring.real_anatomy.real_anatomy_split`), once per real cohort, into
``runs/<profile>/beyond/real/<key>/``, keyed by the cohort the evaluation recorded (root, slices and the sha256
of every file) and by the segmentation and synthesis outputs.

The stress tests have their own cache folder too, ``runs/<profile>/beyond/stress/<key>/``, keyed by the seed
and the training and synthesis outputs. The stage's own folder holds the tables: ``runs.csv`` (one row per
trained network), ``run_metrics.csv`` (per scored map: ``split`` is ``test`` or ``real``) and ``stress.csv``
(per test map and condition).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from pydantic import BaseModel

from mrsisr.network.model import count_parameters, load_model, predict
from mrsisr.network.train import train
from mrsisr.network.variants import VARIANTS
from mrsisr.scoring.ablation import REFERENCE, SCORES, SPLITS, ablation_table, claim_sentences, has_split
from mrsisr.scoring.metrics import per_map_metrics
from mrsisr.scoring.real_anatomy import real_anatomy_split
from mrsisr.scoring.stress import stress_summary, stress_tests
from mrsisr.stages import get_stage
from mrsisr.stages.synthesis import load_split
from mrsisr.stages.training import train_config
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, save_json, save_npy, save_text
from mrsisr.study.profiles import stage_parameters

STAGE = get_stage("beyond")
CACHE_VERSION = 2  # 2: run_metrics.csv has a split column and real-anatomy rows; stress by tumour size
VARIANT_CACHE_VERSION = 2  # 2: the validation maps are cut to beyond_train_fraction too
VARIANT_FOLDER = "beyond/variants"
REAL_FOLDER = "beyond/real"
REAL_CACHE_VERSION = 1
STRESS_FOLDER = "beyond/stress"
STRESS_CACHE_VERSION = 1
REAL_ARRAYS = ("lr", "guide", "hr")
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
        Per scored map and trained network: ``variant, seed, split, subject, kind, grade`` and every metric;
        ``split`` is ``test`` (the synthetic test split) or ``real`` (the evaluation's real anatomy).
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
    def real_run(self) -> bool:
        """True when the networks were also scored on real anatomy."""
        return bool((self.run_metrics["split"] == "real").any())

    @property
    def real_data(self) -> str:
        """In words, the real anatomy the networks were also scored on (or that there was none)."""
        if not self.real_run:
            return "none (the evaluation's real_eval_root is not set)"
        cases = self.run_metrics.loc[self.run_metrics["split"] == "real", "subject"].nunique()
        return f"real glioma MRI under {self.output.params['real_anatomy']['root']} ({cases} cases)"

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote (``real_*`` on real anatomy, when run)."""
        ablation = self.ablation
        table = ablation.set_index("variant")
        values = {"n_runs": len(self.runs), "n_variants": len(table), "real_run": self.real_run}
        values["real_data"] = self.real_data
        for split, prefix in SPLITS.items():
            if not has_split(ablation, split):
                continue
            claims = claim_sentences(ablation, split)
            values[f"{prefix}claims"] = " ".join(claims) or "No ablation of a claim was trained in this run."
            if REFERENCE in table.index:
                values[f"{prefix}seed_sd_psnr"] = float(table.loc[REFERENCE, f"{prefix}psnr_seed_sd"])
            for name in table.index:
                values[f"{prefix}psnr_gain_{name}"] = float(table.loc[name, f"{prefix}psnr_difference"])
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
    training, synthesis = cache.current(run_dir, "training"), cache.current(run_dir, "synthesis")
    real = real_anatomy(run_dir, synthesis, progress)
    values = params.model_dump() | {"real_anatomy": {"key": real.key, "root": real.params["root"]} if real else None}
    output = cache.open_stage(run_dir, STAGE, values, CACHE_VERSION)
    networks = [variant_output(run_dir, variant, seed, params, training, synthesis) for variant, seed in runs]
    remove_stale_variants(run_dir, keep={network.path for network in networks})
    if not output.complete:
        shutil.copyfile(
            stress_folder(run_dir, params.seed, training, synthesis) / "stress.csv", output.path / "stress.csv"
        )
        rows, metrics = [], []
        for (variant, seed), network in zip(runs, networks, strict=True):
            folder = train_variant(network, variant, seed, params, training, synthesis, progress)
            rows.append(cache.read_json(folder / "summary.json"))
            metrics.append(pd.read_csv(folder / "metrics.csv", dtype={"subject": str}).assign(split="test"))
            if real is not None:
                metrics.append(score_real(folder, variant, seed, real))
        save_text(output.path / "runs.csv", pd.DataFrame(rows, columns=RUN_COLUMNS).to_csv(index=False))
        metrics = (
            pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=["variant", "seed", "split"])
        )
        save_text(output.path / "run_metrics.csv", metrics.to_csv(index=False))
        output.mark_complete()
    cache.publish(run_dir, output, exports=EXPORTS)
    return read_result(output)


def seeded_subset(n_maps: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted indices of a seeded share of ``n_maps`` maps (the stage's training, and validation, maps).

    The subset depends on the study's seed and the number of maps only, so every network and every seed of
    ``main`` sees the same maps.
    """
    count = max(1, round(fraction * n_maps))
    return np.sort(np.random.default_rng([seed, n_maps]).permutation(n_maps)[:count])


def training_recipe(training: cache.StageOutput) -> BaseModel:
    """The training stage's recorded parameters (defaults for any it did not record, e.g. an older ``erb_form``)."""
    recorded = {name: value for name, value in training.params.items() if name != "cache_version"}
    return stage_parameters("training", recorded)


def variant_output(
    run_dir: str | os.PathLike,
    variant: str,
    seed: int,
    params: BaseModel,
    training: cache.StageOutput,
    synthesis: cache.StageOutput,
) -> cache.StageOutput:
    """The cache folder of one trained network, keyed by the variant, its seed, the budget and its upstreams.

    The training stage's output is an upstream, so its recorded recipe (``erb_form`` included) is in the key:
    a network trained with another recipe is never reused.
    """
    keyed = {
        "variant": variant,
        "kwargs": VARIANTS[variant].kwargs,
        "tiny": params.beyond_tiny,
        "seed": seed,
        "epochs": params.beyond_epochs,
        "minutes": params.beyond_minutes,
        "train_fraction": params.beyond_train_fraction,
        "cache_version": VARIANT_CACHE_VERSION,
    }
    return cache.stage_output(run_dir, VARIANT_FOLDER, keyed, {"training": training, "synthesis": synthesis})


def remove_stale_variants(run_dir: str | os.PathLike, keep: set[Path]) -> list[Path]:
    """Remove the incomplete variant folders (no ``COMPLETE`` mark: killed runs) other than ``keep``; return them."""
    folder = Path(run_dir) / VARIANT_FOLDER
    if not folder.is_dir():
        return []
    stale = [
        path
        for path in sorted(folder.iterdir())
        if path.is_dir() and path not in keep and not (path / cache.COMPLETE_MARKER).is_file()
    ]
    for path in stale:
        print(f"beyond: removing {path}, an incomplete network of an earlier run", flush=True)
        shutil.rmtree(path)
    return stale


def network_builder(variant: str, tiny: bool, recipe: BaseModel) -> Callable[[], keras.Model]:
    """A builder of the variant's untrained network: the study's own rows in the recipe's form (``erb_form``).

    Parameters
    ----------
    variant : str
        A name of :data:`mrsisr.network.variants.VARIANTS`.
    tiny : bool
        Its tiny form (``beyond_tiny``).
    recipe : pydantic.BaseModel
        The training stage's recorded parameters (:func:`training_recipe`); the peers take none of them.
    """
    spec = VARIANTS[variant]
    form = {name: getattr(recipe, name) for name in spec.recipe}
    return lambda: spec.build(tiny=tiny, **form)


def train_variant(
    output: cache.StageOutput,
    variant: str,
    seed: int,
    params: BaseModel,
    training: cache.StageOutput,
    synthesis: cache.StageOutput,
    progress: bool = True,
) -> Path:
    """Train one network with the training stage's recipe and score it on the test split (or reuse it).

    ``output`` is the network's cache folder (:func:`variant_output`); it ends up holding ``model.keras``,
    ``history.csv``, ``metrics.csv`` (per test map) and ``summary.json`` (one row of :attr:`BeyondResult.runs`).
    Returns its path.
    """
    if output.complete:
        return output.path
    spec = VARIANTS[variant]
    recipe = training_recipe(training)
    config = dataclasses.replace(
        train_config(recipe),
        seed=seed,
        epochs=params.beyond_epochs or recipe.epochs,
        time_budget_min=params.beyond_minutes,
    )
    splits = {}
    for split in ("train", "val", "test"):
        lr, guide, hr, meta = load_split(synthesis.path, split)
        if split != "test":  # the same seeded share of the training and of the validation maps
            rows = seeded_subset(len(lr), params.beyond_train_fraction, params.seed)
            lr, guide, hr, meta = lr[rows], guide[rows], hr[rows], meta.iloc[rows]
        splits[split] = (lr, guide if spec.guided else None, hr, meta)
    result = train(
        network_builder(variant, params.beyond_tiny, recipe),
        splits["train"][:3],
        splits["val"][:3],
        config,
        output.path / "checkpoints",
        progress=progress,
    )
    scores = map_scores(result.model, *splits["test"], variant, seed)
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


def stress_folder(
    run_dir: str | os.PathLike, seed: int, training: cache.StageOutput, synthesis: cache.StageOutput
) -> Path:
    """The stress tests of the training stage's model (:func:`mrsisr.scoring.stress.stress_tests`), or their cache.

    Kept in ``runs/<profile>/beyond/stress/<key>/stress.csv``, keyed by the seed and the training and synthesis
    outputs only: another list of networks or another real cohort does not run them again. Returns the folder.
    """
    keyed = {"seed": seed, "cache_version": STRESS_CACHE_VERSION}
    output = cache.stage_output(run_dir, STRESS_FOLDER, keyed, {"training": training, "synthesis": synthesis})
    if not output.complete:
        lr, guide, hr, meta = load_split(synthesis.path, "test")
        model = load_model(training.path / "model.keras")
        pixel_mm = float(synthesis.params["fov_mm"]) / float(synthesis.params["map_size"])
        table = stress_tests(model, lr, guide, hr, meta, pixel_mm, synthesis.params["lowres_method"], seed)
        save_text(output.path / "stress.csv", table.to_csv(index=False))
        output.mark_complete()
    return output.path


def real_anatomy_output(run_dir: str | os.PathLike, synthesis: cache.StageOutput) -> cache.StageOutput | None:
    """The cache folder of the evaluation's real-anatomy maps (None when the evaluation scored no real anatomy).

    The cohort is the one the evaluation stage's current output recorded: ``real_eval_root``,
    ``real_eval_slices`` and the sha256 of every case file (``real_files``); with the segmentation and
    synthesis outputs it keys the folder, so a changed cohort gives new maps.
    """
    evaluation = cache.current(run_dir, "evaluation")
    root = evaluation.params.get("real_eval_root", "")
    if not root:
        return None
    cohort = {
        "root": root,
        "slices": int(evaluation.params["real_eval_slices"]),
        "files": evaluation.params["real_files"],
        "cache_version": REAL_CACHE_VERSION,
    }
    upstream = {"segmentation": cache.current(run_dir, "segmentation"), "synthesis": synthesis}
    return cache.stage_output(run_dir, REAL_FOLDER, cohort, upstream)


def real_anatomy(
    run_dir: str | os.PathLike, synthesis: cache.StageOutput, progress: bool = True
) -> cache.StageOutput | None:
    """The maps of the evaluation's real-anatomy split, synthesised once per cohort (None when not configured).

    The folder (:func:`real_anatomy_output`) holds ``lr.npy``, ``guide.npy``, ``hr.npy`` and ``meta.csv`` of
    :func:`mrsisr.scoring.real_anatomy.real_anatomy_split`, made with the run's segmentation and synthesis
    parameters.
    """
    output = real_anatomy_output(run_dir, synthesis)
    if output is not None and not output.complete:
        segmentation = cache.current(run_dir, "segmentation").params
        root, n_slices = output.params["root"], output.params["slices"]
        *arrays, meta = real_anatomy_split(root, segmentation, synthesis.params, n_slices, progress)
        for name, array in zip(REAL_ARRAYS, arrays, strict=True):
            save_npy(output.path / f"{name}.npy", array)
        save_text(output.path / "meta.csv", meta.to_csv(index=False))
        output.mark_complete()
    return output


def score_real(folder: Path, variant: str, seed: int, real: cache.StageOutput) -> pd.DataFrame:
    """Every metric of the network in ``folder`` on the real-anatomy maps (the real FLAIR as guide if it takes one).

    The rows have the columns of the test split's (``variant, seed, subject, grade, slice, kind``, the metrics)
    and ``split`` = ``real``.
    """
    lr, guide, hr = (np.load(real.path / f"{name}.npy", allow_pickle=False) for name in REAL_ARRAYS)
    meta = pd.read_csv(real.path / "meta.csv", dtype={"subject": str})
    guide = guide if VARIANTS[variant].guided else None
    return map_scores(load_model(folder / "model.keras"), lr, guide, hr, meta, variant, seed).assign(split="real")


def map_scores(
    model: keras.Model,
    lr: np.ndarray,
    guide: np.ndarray | None,
    hr: np.ndarray,
    meta: pd.DataFrame,
    variant: str,
    seed: int,
) -> pd.DataFrame:
    """Every metric of ``model`` per map: ``variant, seed, subject, grade, slice, kind`` and the metrics."""
    scores = per_map_metrics(predict(model, lr, guide), hr)
    scores = pd.concat([meta[["subject", "grade", "slice", "kind"]].reset_index(drop=True), scores], axis=1)
    scores.insert(0, "seed", seed)
    scores.insert(0, "variant", variant)
    return scores


def read_result(output: cache.StageOutput) -> BeyondResult:
    """Read a complete beyond output into the result its notebook shows."""
    return BeyondResult(
        output=output,
        runs=pd.read_csv(output.path / "runs.csv"),
        run_metrics=pd.read_csv(output.path / "run_metrics.csv", dtype={"subject": str, "split": str}),
        stress=pd.read_csv(output.path / "stress.csv"),
    )
