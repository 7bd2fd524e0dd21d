"""Stage ``evaluation`` (notebook 04): every method on the test split, per-map metrics, Table 2, Figure 3.

The cache key covers the methods, the LPIPS weights and the keys of the synthesis and training outputs it
reads. Artifacts: ``metrics.csv``, ``table2.csv`` (+ by kind and by grade), ``statistics.csv`` and
``figure3.npz`` (the examples of Figure 3 with every method's prediction), exported to
``runs/<profile>/evaluation/``. When ``real_eval_root`` names real cases, ``real/`` holds the same tables
and figure data for maps synthesised from that real anatomy (:mod:`mrsisr.scoring.real_anatomy`), scored
for the run's model with the real FLAIR as guide, the packaged unguided model, and the classical methods.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mrsisr.anatomy.cohort import cohort_specs
from mrsisr.mrsi.consistency import enforce_data_consistency
from mrsisr.network import packaged
from mrsisr.network.model import is_guided, load_model, predict
from mrsisr.scoring import lpips, verdict
from mrsisr.scoring.baselines import interpolate_all
from mrsisr.scoring.figures import choose_examples
from mrsisr.scoring.real_anatomy import real_anatomy_split, real_cohort_parameters
from mrsisr.scoring.robustness import guide_robustness
from mrsisr.scoring.tables import (
    BREAKDOWNS,
    REFERENCE_METHOD,
    RESULT_FILES,
    TableViews,
    evaluate_predictions,
    write_results,
)
from mrsisr.stages import get_stage
from mrsisr.stages.synthesis import load_split
from mrsisr.study import cache
from mrsisr.study.atomic import file_sha256, save_npz, save_text

STAGE = get_stage("evaluation")
CACHE_VERSION = 4
FIGURE_FILE = "figure3.npz"
REAL = "real"
UNGUIDED = "model, no guide"
#: The model's maps with their central k-space replaced by the input's (``mrsisr upscale --data-consistency``);
#: scored when the inputs are k-space truncations, for which that step is exact.
CONSISTENT = "model + data consistency"
ROBUSTNESS = "robustness.csv"


@dataclass(frozen=True)
class EvaluationResult(TableViews):
    """What notebook 04 shows.

    Attributes
    ----------
    metrics : DataFrame
        One row per (test map, method) with every metric.
    tables : dict of str to DataFrame
        ``table2.csv``, ``table2_by_kind.csv``, ``table2_by_grade.csv`` and ``statistics.csv`` by file name.
    figure : dict of str to ndarray
        Figure 3's examples: ``truth``, ``lowres``, ``pred_<method>`` and their ``subject``, ``kind``, ``grade``.
    real : EvaluationResult or None
        The same for maps synthesised from the real anatomy under ``real_eval_root`` (None when unset).
    robustness : DataFrame or None
        The guided model's scores with its test guides perturbed (:mod:`mrsisr.scoring.robustness`);
        None for an unguided model.
    """

    output: cache.StageOutput
    metrics: pd.DataFrame
    tables: dict
    figure: dict
    real: EvaluationResult | None = None
    robustness: pd.DataFrame | None = None

    @property
    def by_grade(self) -> pd.DataFrame:
        """Table 2 by tumour grade."""
        return self.tables["table2_by_grade.csv"]

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote (``real_*`` for the real anatomy, NaN when not run)."""
        values = self._scores()
        real = self.real._scores() if self.real is not None else dict.fromkeys(values, np.nan)
        real["guide_gain_db"] = (
            real["psnr_model"] - float(self.real.summary.set_index("method").loc[UNGUIDED, "psnr_mean"])
            if self.real is not None
            else np.nan
        )
        return values | {f"real_{name}": value for name, value in real.items()} | {"real_run": self.real is not None}

    def _scores(self) -> dict:
        """Table 2's headline means, the gains between methods (:mod:`mrsisr.scoring.verdict`) and the verdict."""
        overall = self.summary.set_index("method")
        gains = verdict.gains(self.summary)
        return verdict.gain_values(gains) | {
            "verdict": verdict.verdict_sentence(gains),
            "psnr_levels": verdict.level_sentence(self.summary),
            "n_maps": int((self.metrics["method"] == REFERENCE_METHOD).sum()),
            "psnr_model": float(overall.loc["model", "psnr_mean"]),
            "psnr_spline": float(overall.loc["spline", "psnr_mean"]),
            "psnr_gain_db": float(overall.loc["model", "psnr_mean"] - overall.loc["spline", "psnr_mean"]),
            "ssim_model": float(overall.loc["model", "ssim_mean"]),
            "lpips_model": float(overall.loc["model", "lpips_mean"]),
        }


def run(run_dir: str | os.PathLike, params: BaseModel) -> EvaluationResult:
    """Score the run's model and the classical methods on the test split (or reuse the scores), and publish them.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    """
    values = params.model_dump() | {"lpips_weights": lpips.weights_digest()}
    if params.real_eval_root:
        segmentation = cache.current(run_dir, "segmentation").params
        specs = cohort_specs(real_cohort_parameters(params.real_eval_root, segmentation))
        files = {spec.subject: (spec.t1, spec.flair, spec.seg) for spec in specs}
        values["real_files"] = {subject: [file_sha256(f) for f in paths if f] for subject, paths in files.items()}
        values["packaged_model"] = file_sha256(packaged.default_model_path())
    output = cache.open_stage(run_dir, STAGE, values, CACHE_VERSION)
    if not output.complete:
        synthesis = cache.current(run_dir, "synthesis")
        model = load_model(cache.current(run_dir, "training").path / "model.keras")
        lr, guide, hr, meta = load_split(synthesis.path, "test")
        predictions = {REFERENCE_METHOD: predict(model, lr, guide)}
        if synthesis.params["lowres_method"] == "kspace":
            predictions[CONSISTENT] = enforce_data_consistency(predictions[REFERENCE_METHOD], lr).astype(np.float32)
        predictions |= interpolate_all(lr, params.methods)
        _score(output.path, predictions, lr, hr, meta, params)
        if is_guided(model):
            save_text(output.path / ROBUSTNESS, guide_robustness(model, lr, guide, hr).to_csv(index=False))
        if params.real_eval_root:
            segmentation = cache.current(run_dir, "segmentation").params
            lr, guide, hr, meta = real_anatomy_split(
                params.real_eval_root, segmentation, synthesis.params, params.real_eval_slices
            )
            predictions = {REFERENCE_METHOD: predict(model, lr, guide if is_guided(model) else None)}
            predictions[UNGUIDED] = predict(load_model(packaged.default_model_path()), lr)
            predictions |= interpolate_all(lr, params.methods)
            _score(output.path / REAL, predictions, lr, hr, meta, params)
        output.mark_complete()
    cache.publish(run_dir, output, exports=(*RESULT_FILES, FIGURE_FILE))
    return read_result(output)


def _score(folder: Path, predictions: dict, lr: np.ndarray, hr: np.ndarray, meta: pd.DataFrame, params) -> None:
    """Write the metrics, tables and Figure 3's examples of ``predictions`` into ``folder``."""
    write_results(folder, evaluate_predictions(predictions, hr, meta))
    chosen = choose_examples(meta, params.n_figure_examples, params.seed)
    save_npz(
        folder / FIGURE_FILE,
        truth=hr[chosen],
        lowres=lr[chosen],
        **{f"pred_{method}": maps[chosen] for method, maps in predictions.items()},
        **{column: meta[column].to_numpy()[chosen].astype(str) for column in ("subject", "kind", "grade")},
    )


def read_result(output: cache.StageOutput, folder: Path | None = None) -> EvaluationResult:
    """Read a complete evaluation output (or its ``real/`` part) into the result its notebook shows."""
    folder = output.path if folder is None else folder
    with np.load(folder / FIGURE_FILE, allow_pickle=False) as data:
        figure = {name: data[name] for name in data.files}
    real, robustness = folder / REAL, folder / ROBUSTNESS
    return EvaluationResult(
        output=output,
        metrics=pd.read_csv(folder / "metrics.csv", dtype={"subject": str}),
        tables={name: pd.read_csv(folder / name) for name in (*BREAKDOWNS, "statistics.csv")},
        figure=figure,
        real=read_result(output, real) if real.is_dir() else None,
        robustness=pd.read_csv(robustness) if robustness.is_file() else None,
    )
