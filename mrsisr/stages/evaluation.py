"""Stage ``evaluation`` (notebook 04): every method on the test split, per-map metrics, Table 2, Figure 3.

The cache key covers the methods, the LPIPS weights and the keys of the synthesis and training outputs it
reads. Artifacts: ``metrics.csv``, ``table2.csv`` (+ by kind and by grade), ``statistics.csv`` and
``figure3.npz`` (the examples of Figure 3 with every method's prediction), exported to
``runs/<profile>/evaluation/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mrsisr.network.model import load_model, predict
from mrsisr.scoring import lpips
from mrsisr.scoring.baselines import interpolate_all
from mrsisr.scoring.figures import choose_examples
from mrsisr.scoring.tables import BREAKDOWNS, REFERENCE_METHOD, RESULT_FILES, evaluate_predictions, write_results
from mrsisr.stages import get_stage
from mrsisr.stages.synthesis import load_split
from mrsisr.study import cache
from mrsisr.study.atomic import save_npz

STAGE = get_stage("evaluation")
CACHE_VERSION = 2
FIGURE_FILE = "figure3.npz"


@dataclass(frozen=True)
class EvaluationResult:
    """What notebook 04 shows.

    Attributes
    ----------
    output : StageOutput
    metrics : DataFrame
        One row per (test map, method) with every metric.
    tables : dict of str to DataFrame
        ``table2.csv``, ``table2_by_kind.csv``, ``table2_by_grade.csv`` and ``statistics.csv`` by file name.
    figure : dict of str to ndarray
        Figure 3's examples: ``truth``, ``lowres``, ``pred_<method>`` and their ``subject``, ``kind``, ``grade``.
    """

    output: cache.StageOutput
    metrics: pd.DataFrame
    tables: dict
    figure: dict

    @property
    def summary(self) -> pd.DataFrame:
        """Table 2 in numbers (overall means, SDs and p-values per method)."""
        return self.tables["table2.csv"]

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        overall = self.summary.set_index("method")
        return {
            "n_maps": int((self.metrics["method"] == REFERENCE_METHOD).sum()),
            "psnr_model": float(overall.loc["model", "psnr_mean"]),
            "psnr_spline": float(overall.loc["spline", "psnr_mean"]),
            "psnr_gain_db": float(overall.loc["model", "psnr_mean"] - overall.loc["spline", "psnr_mean"]),
            "ssim_model": float(overall.loc["model", "ssim_mean"]),
            "lpips_model": float(overall.loc["model", "lpips_mean"]),
        }


def run(run_dir: str | os.PathLike, params: BaseModel) -> EvaluationResult:
    """Score the run's model and the classical methods on the test split (or reuse the scores), and publish them.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder (``runs/<profile>``).
    params : pydantic model
        The stage's parameters (:func:`mrsisr.study.profiles.stage_parameters`).
    """
    values = params.model_dump() | {"lpips_weights": lpips.weights_digest()}
    output = cache.open_stage(run_dir, STAGE, values, CACHE_VERSION)
    if not output.complete:
        lr, guide, hr, meta = load_split(cache.current(run_dir, "synthesis").path, "test")
        model = load_model(cache.current(run_dir, "training").path / "model.keras")
        predictions = {REFERENCE_METHOD: predict(model, lr, guide)} | interpolate_all(lr, params.methods)
        write_results(output.path, evaluate_predictions(predictions, hr, meta))
        chosen = choose_examples(meta, params.n_figure_examples, params.seed)
        save_npz(
            output.path / FIGURE_FILE,
            truth=hr[chosen],
            lowres=lr[chosen],
            **{f"pred_{method}": maps[chosen] for method, maps in predictions.items()},
            **{column: meta[column].to_numpy()[chosen].astype(str) for column in ("subject", "kind", "grade")},
        )
        output.mark_complete()
    cache.publish(run_dir, output, exports=(*RESULT_FILES, FIGURE_FILE))
    return read_result(output)


def read_result(output: cache.StageOutput) -> EvaluationResult:
    """Read a complete evaluation output into the result its notebook shows."""
    with np.load(output.path / FIGURE_FILE, allow_pickle=False) as data:
        figure = {name: data[name] for name in data.files}
    return EvaluationResult(
        output=output,
        metrics=pd.read_csv(output.path / "metrics.csv", dtype={"subject": str}),
        tables={name: pd.read_csv(output.path / name) for name in (*BREAKDOWNS, "statistics.csv")},
        figure=figure,
    )
