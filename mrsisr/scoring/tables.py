"""Table 2 and its statistics from per-map metrics: means, SDs, tests against the model, the paper beside ours.

The functions take arrays and tables (``predictions``: method name -> (N, H, W) maps), so the evaluation
and the 7T validation stages compute their tables the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mrsisr.scoring.metrics import METRIC_NAMES, per_map_metrics
from mrsisr.scoring.stats import mann_whitney, wilcoxon_signed_rank
from mrsisr.study.atomic import atomic_path

REFERENCE_METHOD = "model"
META_COLUMNS: tuple[str, ...] = ("subject", "slice", "kind", "grade")
PAIR_KEYS: list[str] = ["subject", "slice", "kind"]
METRICS_COLUMNS: tuple[str, ...] = (*META_COLUMNS, "method", *METRIC_NAMES)
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    "table2.csv": (),
    "table2_by_kind.csv": ("kind",),
    "table2_by_grade.csv": ("grade",),
}
RESULT_FILES: tuple[str, ...] = ("metrics.csv", *BREAKDOWNS, "statistics.csv")
SIGNIFICANCE = 0.05
HIGHER_IS_BETTER = frozenset({"psnr", "psnr_range", "ssim"})
METRIC_LABELS = {
    "mse": ("MSE", 5),
    "rmse": ("RMSE", 4),
    "psnr": ("PSNR (dB)", 2),
    "psnr_range": ("PSNR, truth range (dB)", 2),
    "ssim": ("SSIM", 3),
    "lpips": ("LPIPS", 3),
}


def evaluate_predictions(predictions: Mapping[str, np.ndarray], truth: np.ndarray, meta: pd.DataFrame) -> pd.DataFrame:
    """Compute the per-map metrics of every method.

    Parameters
    ----------
    predictions : mapping of str to ndarray (N, H, W)
        Upscaled maps per method, in the order of ``truth``.
    truth : ndarray, shape (N, H, W)
        Ground-truth maps in [0, 1].
    meta : pandas.DataFrame
        N rows with at least the columns ``subject, slice, kind, grade``.

    Returns
    -------
    pandas.DataFrame
        The ``metrics.csv`` table: one row per (map, method), columns :data:`METRICS_COLUMNS`.
    """
    if not predictions:
        raise ValueError("no predictions to evaluate: give at least one method")
    missing = [column for column in META_COLUMNS if column not in meta.columns]
    if missing:
        raise ValueError(f"meta table lacks the columns {missing}")
    if len(meta) != len(truth):
        raise ValueError(f"meta has {len(meta)} rows but truth has {len(truth)} maps")
    tables = []
    for method, pred in predictions.items():
        table = per_map_metrics(pred, truth)
        table.insert(0, "method", method)
        tables.append(pd.concat([meta[list(META_COLUMNS)].reset_index(drop=True), table], axis=1))
    return pd.concat(tables, ignore_index=True)[list(METRICS_COLUMNS)]


def _groups(metrics: pd.DataFrame, by: Sequence[str]) -> list[tuple[dict, pd.DataFrame]]:
    if not by:
        return [({}, metrics)]
    return [(dict(zip(by, key, strict=True)), group) for key, group in metrics.groupby(list(by), sort=True)]


def _methods(metrics: pd.DataFrame, reference: str) -> list[str]:
    others = [method for method in dict.fromkeys(metrics["method"]) if method != reference]
    return [reference, *others] if reference in set(metrics["method"]) else others


def compare_to_reference(
    metrics: pd.DataFrame, reference: str = REFERENCE_METHOD, by: Sequence[str] = ()
) -> pd.DataFrame:
    """Test every method against ``reference`` on every metric (Mann-Whitney U and Wilcoxon signed-rank).

    Maps are paired by (subject, slice, kind). The effect sizes are rank-biserial correlations of the
    reference against the method (positive: the reference's values tend to be larger).

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, ``method, metric, n, reference_median, method_median, mw_u, mw_p,
        mw_rank_biserial, wilcoxon_w, wilcoxon_p, wilcoxon_rank_biserial``.
    """
    if reference not in set(metrics["method"]):
        raise ValueError(f"reference method {reference!r} is not in the metrics table")
    rows = []
    for group_key, group in _groups(metrics, by):
        ref = group[group["method"] == reference].set_index(PAIR_KEYS)
        for method in _methods(group, reference)[1:]:
            other = group[group["method"] == method].set_index(PAIR_KEYS).reindex(ref.index)
            for metric in METRIC_NAMES:
                mw = mann_whitney(ref[metric], other[metric])
                wx = wilcoxon_signed_rank(ref[metric], other[metric])
                rows.append(
                    {
                        **group_key,
                        "method": method,
                        "metric": metric,
                        "n": len(ref),
                        "reference_median": float(ref[metric].median()),
                        "method_median": float(other[metric].median()),
                        "mw_u": mw.statistic,
                        "mw_p": mw.p_value,
                        "mw_rank_biserial": mw.rank_biserial,
                        "wilcoxon_w": wx.statistic,
                        "wilcoxon_p": wx.p_value,
                        "wilcoxon_rank_biserial": wx.rank_biserial,
                    }
                )
    return pd.DataFrame(rows)


def summary_table(metrics: pd.DataFrame, reference: str = REFERENCE_METHOD, by: Sequence[str] = ()) -> pd.DataFrame:
    """Table 2 in numbers: mean, SD and the p-values against ``reference`` per method (and group).

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, ``method, n``, then for each metric ``<m>_mean``, ``<m>_sd``
        (ddof 1), ``<m>_p_mw`` and ``<m>_p_wilcoxon`` (empty for the reference itself).
    """
    has_reference = reference in set(metrics["method"])
    tests = compare_to_reference(metrics, reference, by) if has_reference else pd.DataFrame()
    rows = []
    for group_key, group in _groups(metrics, by):
        for method in _methods(group, reference):
            values = group[group["method"] == method]
            row = {**group_key, "method": method, "n": len(values)}
            for metric in METRIC_NAMES:
                row[f"{metric}_mean"] = float(values[metric].mean())
                row[f"{metric}_sd"] = float(values[metric].std(ddof=1))
                match = _select(tests, {**group_key, "method": method, "metric": metric})
                row[f"{metric}_p_mw"] = float(match["mw_p"].iloc[0]) if len(match) else np.nan
                row[f"{metric}_p_wilcoxon"] = float(match["wilcoxon_p"].iloc[0]) if len(match) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def rank_methods(summary: pd.DataFrame, metrics: Sequence[str] = ("mse", "psnr", "ssim", "lpips")) -> pd.DataFrame:
    """Order the methods from best to worst by each metric's mean (lower is better for MSE and LPIPS).

    Returns
    -------
    pandas.DataFrame
        One row per rank (1 = best), one column per metric label, the method names as values.
    """
    columns = {}
    for metric in metrics:
        ordered = summary.sort_values(f"{metric}_mean", ascending=metric not in HIGHER_IS_BETTER)
        columns[METRIC_LABELS[metric][0]] = list(ordered["method"])
    return pd.DataFrame(columns, index=pd.RangeIndex(1, len(summary) + 1, name="rank"))


def _select(table: pd.DataFrame, values: Mapping[str, object]) -> pd.DataFrame:
    if table.empty:
        return table
    mask = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def format_table(
    summary: pd.DataFrame, metrics: Sequence[str] = ("mse", "rmse", "psnr", "ssim", "lpips")
) -> pd.DataFrame:
    """Render a :func:`summary_table` as "mean (SD)" strings with significance marks.

    ``*`` marks p < 0.05 in the two-sided Mann-Whitney U test against the model (the paper's test),
    ``†`` p < 0.05 in the Wilcoxon signed-rank test.
    """
    group_columns = [c for c in summary.columns if c in META_COLUMNS]
    rendered = summary[[*group_columns, "method", "n"]].copy()
    for metric in metrics:
        label, digits = METRIC_LABELS[metric]
        cells = []
        for _, row in summary.iterrows():
            marks = ("*" if row[f"{metric}_p_mw"] < SIGNIFICANCE else "") + (
                "†" if row[f"{metric}_p_wilcoxon"] < SIGNIFICANCE else ""
            )
            cells.append(f"{row[f'{metric}_mean']:.{digits}f} ({row[f'{metric}_sd']:.{digits}f}){marks}")
        rendered[label] = cells
    return rendered.set_index([*group_columns, "method"])


def paper_table2() -> dict:
    """Return the paper's Table 2 (means; MSE with SD) and its citation, from ``data/paper_table2.yaml``."""
    text = resources.files("mrsisr").joinpath("data/paper_table2.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 (overall means) beside the paper's, as display strings; "–" where the paper has none."""
    paper = paper_table2()["methods"]
    rows = {}
    for _, row in summary.iterrows():
        reported = paper.get(row["method"], {})
        cells = {}
        for metric in ("mse", "psnr", "ssim", "lpips"):
            label, digits = METRIC_LABELS[metric]
            ours = f"{row[f'{metric}_mean']:.{digits}f}"
            theirs = f"{reported[metric]:.{digits}f}" if metric in reported else "–"
            if metric == "mse":
                ours += f" ± {row['mse_sd']:.{digits}f}"
                theirs += f" ± {reported['mse_sd']:.{digits}f}" if "mse_sd" in reported else ""
            cells[(label, "paper")] = theirs
            cells[(label, "ours")] = ours
        rows[row["method"]] = cells
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "method"
    return table


def _save_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


def write_results(folder: str | os.PathLike, metrics: pd.DataFrame, reference: str = REFERENCE_METHOD) -> None:
    """Write ``metrics.csv``, ``table2.csv`` (+ by kind and by grade) and ``statistics.csv`` to ``folder``."""
    folder = Path(folder)
    _save_csv(metrics, folder / "metrics.csv")
    for name, by in BREAKDOWNS.items():
        _save_csv(summary_table(metrics, reference, by), folder / name)
    statistics = pd.concat(
        [
            compare_to_reference(metrics, reference, by).assign(breakdown=",".join(by) or "all")
            for by in BREAKDOWNS.values()
        ],
        ignore_index=True,
    )
    _save_csv(statistics, folder / "statistics.csv")




def statistics_table(statistics: pd.DataFrame) -> pd.DataFrame:
    """The overall tests of ``statistics.csv`` (model against each method, every metric) as display strings."""
    overall = statistics[statistics["breakdown"] == "all"]
    columns = ["n", "mw_p", "mw_rank_biserial", "wilcoxon_p", "wilcoxon_rank_biserial"]
    shown = overall.set_index(["metric", "method"])[columns].sort_index()
    return shown.map(lambda value: f"{value:.3g}")


class TableViews:
    """Named views of a stage's Table 2 files, for results that hold them as ``tables`` (file name -> table)."""

    tables: dict

    @property
    def summary(self) -> pd.DataFrame:
        """Table 2 in numbers: overall means, SDs and p-values per method."""
        return self.tables["table2.csv"]

    @property
    def by_kind(self) -> pd.DataFrame:
        """Table 2 by map kind."""
        return self.tables["table2_by_kind.csv"]

    @property
    def statistics(self) -> pd.DataFrame:
        """The tests of the model against each method (``statistics.csv``)."""
        return self.tables["statistics.csv"]
