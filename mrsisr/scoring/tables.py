"""Table 2 and its statistics from per-map metrics: means, SDs, tests against the model, the paper beside ours.

The functions take arrays and tables (``predictions``: method name -> (N, H, W) maps), so the evaluation
and the 7T validation stages compute their tables the same way.

Statistics respect the design (:mod:`mrsisr.scoring.stats`): each subject gives several maps, so the test of a
method against the model is the Wilcoxon signed-rank test over subjects, on each subject's mean metric; the
number of subjects is given with every p-value. The paper's map-level Mann-Whitney U test is kept in
``statistics.csv`` as ``p_maps_mann_whitney``, for comparison, and named map-level wherever it is shown.

Display tables (:func:`format_table`, :func:`statistics_table`, :func:`paper_comparison`) share one style:
plain-language headers, the method as index, "mean (SD)" cells, MSE in units of 10⁻³, "-" for a missing
value, and a caption in ``table.attrs["caption"]`` that explains every mark; :func:`styled` shows a display
table with its caption above it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mrsisr.scoring.metrics import METRIC_NAMES, per_map_metrics
from mrsisr.scoring.stats import mann_whitney, subject_level_test
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
STATISTICS_COLUMNS: tuple[str, ...] = (
    "method", "metric", "n_subjects", "n_maps", "reference_mean", "method_mean", "mean_difference",
    "p_subjects", "rank_biserial_subjects", "p_maps_mann_whitney",
)  # fmt: skip
SIGNIFICANCE = 0.05
HIGHER_IS_BETTER = frozenset({"psnr", "psnr_range", "psnr_authors", "ssim", "ssim_authors"})
TABLE2_METRICS: tuple[str, ...] = ("mse", "rmse", "psnr", "psnr_range", "psnr_authors", "ssim", "ssim_authors", "lpips")
#: Variants of a metric, shown only where they differ from it.
VARIANTS: dict[str, str] = {"psnr_range": "psnr", "psnr_authors": "psnr", "ssim_authors": "ssim"}
MISSING = "-"


@dataclass(frozen=True)
class MetricFormat:
    """How a metric is shown: its name, unit, the factor its values are multiplied by, and the decimals."""

    name: str
    unit: str = ""
    scale: float = 1.0
    digits: int = 3

    @property
    def header(self) -> str:
        """Column header, e.g. "PSNR (dB)" or "MSE (×10⁻³)"."""
        units = [u for u in (self.unit, "" if self.scale == 1 else f"×10{_superscript(-np.log10(self.scale))}") if u]
        return f"{self.name} ({', '.join(units)})" if units else self.name

    def value(self, number: float) -> str:
        """``number`` in this metric's scale and decimals; "-" for NaN."""
        return MISSING if not np.isfinite(number) else f"{number * self.scale:.{self.digits}f}"


def _superscript(power: float) -> str:
    return str(round(power)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


METRIC_FORMATS: dict[str, MetricFormat] = {
    "mse": MetricFormat("MSE", scale=1e3, digits=2),
    "rmse": MetricFormat("RMSE", digits=3),
    "psnr": MetricFormat("PSNR", "dB", digits=2),
    "psnr_range": MetricFormat("PSNR, truth's range", "dB", digits=2),
    "psnr_authors": MetricFormat("PSNR, authors' definition", "dB", digits=2),
    "ssim": MetricFormat("SSIM", digits=3),
    "ssim_authors": MetricFormat("SSIM, authors' definition", digits=3),
    "lpips": MetricFormat("LPIPS", digits=3),
}
GROUP_LABELS = {"kind": "Map kind", "grade": "Grade", "method": "Method"}
VARIANT_NOTES = {
    "psnr_range": "PSNR with each truth map's own range",
    "psnr_authors": "PSNR with the authors' definition (data-derived peak)",
    "ssim_authors": "SSIM with the authors' data range",
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


def _subject_tests(group: pd.DataFrame, reference: str, method: str) -> dict[str, dict]:
    """Every metric's subject-level test (and the map-level Mann-Whitney U) of ``reference`` against ``method``."""
    ref = group[group["method"] == reference].set_index(PAIR_KEYS)
    other = group[group["method"] == method].set_index(PAIR_KEYS).reindex(ref.index)
    subjects = ref.index.get_level_values("subject").to_numpy()
    results = {}
    for metric in METRIC_NAMES:
        test = subject_level_test(ref[metric].to_numpy(), other[metric].to_numpy(), subjects)
        results[metric] = {
            "n_subjects": test.n_subjects,
            "n_maps": test.n_maps,
            "reference_mean": test.mean_a,
            "method_mean": test.mean_b,
            "mean_difference": test.mean_difference,
            "p_subjects": test.p_value,
            "rank_biserial_subjects": test.rank_biserial,
            "p_maps_mann_whitney": mann_whitney(ref[metric], other[metric]).p_value,
        }
    return results


def compare_to_reference(
    metrics: pd.DataFrame, reference: str = REFERENCE_METHOD, by: Sequence[str] = ()
) -> pd.DataFrame:
    """Test every method against ``reference`` on every metric, at the subject level.

    Maps are paired by (subject, slice, kind); each subject's maps are averaged per method and the subject
    means compared by the two-sided Wilcoxon signed-rank test (:func:`mrsisr.scoring.stats.subject_level_test`).
    The paper's map-level Mann-Whitney U test, which treats every map as independent, is added for
    comparison.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, then :data:`STATISTICS_COLUMNS`: ``method, metric, n_subjects, n_maps,
        reference_mean, method_mean`` (means of subject means), ``mean_difference`` (reference - method),
        ``p_subjects``, ``rank_biserial_subjects`` (positive: the reference's values tend to be larger) and
        ``p_maps_mann_whitney``.
    """
    if reference not in set(metrics["method"]):
        raise ValueError(f"reference method {reference!r} is not in the metrics table")
    rows = []
    for group_key, group in _groups(metrics, by):
        for method in _methods(group, reference)[1:]:
            for metric, result in _subject_tests(group, reference, method).items():
                rows.append({**group_key, "method": method, "metric": metric, **result})
    return pd.DataFrame(rows, columns=[*by, *STATISTICS_COLUMNS])


def summary_table(metrics: pd.DataFrame, reference: str = REFERENCE_METHOD, by: Sequence[str] = ()) -> pd.DataFrame:
    """Table 2 in numbers: per method (and group) the sample sizes, every metric's mean, SD and subject-level p.

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, ``method, n_subjects, n_maps``, then for each metric ``<m>_mean``,
        ``<m>_sd`` (over maps, ddof 1) and ``<m>_p``, the subject-level Wilcoxon p-value against ``reference``
        (NaN for the reference itself, or without it).
    """
    has_reference = reference in set(metrics["method"])
    rows = []
    for group_key, group in _groups(metrics, by):
        for method in _methods(group, reference):
            values = group[group["method"] == method]
            tests = _subject_tests(group, reference, method) if has_reference and method != reference else {}
            row = {**group_key, "method": method, "n_subjects": values["subject"].nunique(), "n_maps": len(values)}
            for metric in METRIC_NAMES:
                row[f"{metric}_mean"] = float(values[metric].mean())
                row[f"{metric}_sd"] = float(values[metric].std(ddof=1))
                row[f"{metric}_p"] = tests[metric]["p_subjects"] if tests else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def rank_methods(summary: pd.DataFrame, metrics: Sequence[str] = ("mse", "psnr", "ssim", "lpips")) -> pd.DataFrame:
    """Order the methods from best to worst by each metric's mean (lower is better for MSE and LPIPS).

    Returns
    -------
    pandas.DataFrame
        One row per rank (1 = best), one column per metric name, the method names as values.
    """
    columns = {}
    for metric in metrics:
        ordered = summary.sort_values(f"{metric}_mean", ascending=metric not in HIGHER_IS_BETTER)
        columns[METRIC_FORMATS[metric].name] = list(ordered["method"])
    return pd.DataFrame(columns, index=pd.RangeIndex(1, len(summary) + 1, name="Rank"))


def format_p(p: float) -> str:
    """A p-value for display: "-" when missing, "< 1e-4" below 0.0001, else 3 decimals (4 below 0.001)."""
    if not np.isfinite(p):
        return MISSING
    if p < 1e-4:
        return "< 1e-4"
    return f"{p:.4f}" if p < 1e-3 else f"{p:.3f}"


def _shown_metrics(summary: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """The metrics to show and a note per variant left out because it equals its metric in every row."""
    shown, notes = [], []
    for metric in metrics:
        base = VARIANTS.get(metric)
        columns = [f"{metric}_mean", f"{metric}_sd"]
        if base in metrics and np.allclose(
            summary[columns].to_numpy(float), summary[[f"{base}_mean", f"{base}_sd"]].to_numpy(float), equal_nan=True
        ):
            notes.append(f"{VARIANT_NOTES[metric]} equals {METRIC_FORMATS[base].name} here and is not shown.")
        else:
            shown.append(metric)
    return shown, notes


def _subjects_phrase(n_subjects: pd.Series) -> str:
    sizes = sorted({int(n) for n in n_subjects})
    phrase = f"n = {sizes[0]} subjects" if len(sizes) == 1 else "n = the Subjects column"
    if sizes[0] < 6:
        phrase += "; with fewer than 6 subjects no difference can reach p < 0.05"
    return phrase


def format_table(summary: pd.DataFrame, metrics: Sequence[str] = TABLE2_METRICS) -> pd.DataFrame:
    """Render a :func:`summary_table` for display: "mean (SD)" cells, plain headers, ``*`` explained in the caption.

    ``*`` marks a method that differs from the model at p < 0.05 in the two-sided Wilcoxon signed-rank test
    over subjects. A variant metric (``psnr_range``, ``psnr_authors``, ``ssim_authors``) equal to its metric in
    every row is left out, and the caption says so. The caption is in ``attrs["caption"]``.

    Returns
    -------
    pandas.DataFrame
        Index: the group columns and the method; columns "Subjects", "Maps" and one per metric shown.
    """
    group_columns = [c for c in summary.columns if c in META_COLUMNS]
    shown, notes = _shown_metrics(summary, metrics)
    rendered = pd.DataFrame({"Subjects": summary["n_subjects"], "Maps": summary["n_maps"]})
    for metric in shown:
        style = METRIC_FORMATS[metric]
        rendered[style.header] = [
            f"{style.value(row[f'{metric}_mean'])} ({style.value(row[f'{metric}_sd'])})"
            + ("*" if row[f"{metric}_p"] < SIGNIFICANCE else "")
            for _, row in summary.iterrows()
        ]
    index = [summary[c] for c in group_columns] + [summary["method"]]
    rendered.index = pd.MultiIndex.from_arrays(index, names=[GROUP_LABELS[c] for c in [*group_columns, "method"]])
    if not group_columns:
        rendered.index = rendered.index.get_level_values(0)
    caption = (
        "Mean (SD) over maps. *: differs from the model at p < 0.05, two-sided Wilcoxon signed-rank test "
        f"on the subjects' mean values ({_subjects_phrase(summary['n_subjects'])})."
    )
    rendered.attrs["caption"] = " ".join([caption, *notes])
    return rendered


def styled(table: pd.DataFrame, caption: str | None = None):
    """Show a display table in the study's one style: caption above, "-" for missing values, no numeric index.

    Parameters
    ----------
    table : pandas.DataFrame
        A display table (:func:`format_table`, :func:`statistics_table`, :func:`paper_comparison`, ...).
    caption : str, optional
        Defaults to ``table.attrs["caption"]`` (none when absent).

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    styler = table.style.format(na_rep=MISSING).set_table_styles(
        [
            {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em;"},
            {"selector": "td", "props": "text-align: right; white-space: nowrap;"},
        ]
    )
    caption = table.attrs.get("caption") if caption is None else caption
    return styler.set_caption(caption) if caption else styler


def paper_table2() -> dict:
    """Return the paper's Table 2 (means; MSE with SD) and its citation, from ``data/paper_table2.yaml``."""
    text = resources.files("mrsisr").joinpath("data/paper_table2.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 (overall means) beside the paper's, as display strings; "-" where the paper has none.

    MSE is shown in units of 10⁻³ as mean (SD), the other metrics as means; where our PSNR with the authors'
    definition differs from our PSNR it is added under PSNR. The caption is in ``attrs["caption"]``.

    Returns
    -------
    pandas.DataFrame
        Index "Method"; two-level columns (metric header, "paper" / "ours" / "ours, authors' definition").
    """
    paper = paper_table2()
    authors = "psnr_authors_mean" in summary and not np.allclose(summary["psnr_authors_mean"], summary["psnr_mean"])
    rows = {}
    for _, row in summary.iterrows():
        reported = paper["methods"].get(row["method"], {})
        cells = {}
        for metric in ("mse", "psnr", "ssim", "lpips"):
            style = METRIC_FORMATS[metric]
            ours, theirs = style.value(row[f"{metric}_mean"]), style.value(reported.get(metric, np.nan))
            if metric == "mse":
                ours += f" ({style.value(row['mse_sd'])})"
                theirs += f" ({style.value(reported['mse_sd'])})" if "mse_sd" in reported else ""
            cells[(style.header, "paper")] = theirs
            cells[(style.header, "ours")] = ours
            if metric == "psnr" and authors:
                cells[(style.header, "ours, authors' definition")] = style.value(row["psnr_authors_mean"])
        rows[row["method"]] = cells
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = GROUP_LABELS["method"]
    table.attrs["caption"] = (
        f"The paper: {paper['n_maps']} test maps of BraTS 2020 patients (its Table 2; MSE as mean (SD), the "
        "other metrics as means). Ours: this run's test maps, mean (SD) for MSE. MSE in units of 10⁻³."
        + (" The authors' PSNR takes its peak from the data (the larger maximum of the two maps)." if authors else "")
    )
    return table


def _save_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


def write_results(folder: str | os.PathLike, metrics: pd.DataFrame, reference: str = REFERENCE_METHOD) -> None:
    """Write ``metrics.csv``, ``table2.csv`` (+ by kind and by grade) and ``statistics.csv`` to ``folder``.

    ``statistics.csv`` is :func:`compare_to_reference` over all maps: one row per method and metric.
    """
    folder = Path(folder)
    _save_csv(metrics, folder / "metrics.csv")
    for name, by in BREAKDOWNS.items():
        _save_csv(summary_table(metrics, reference, by), folder / name)
    _save_csv(compare_to_reference(metrics, reference), folder / "statistics.csv")


def statistics_table(statistics: pd.DataFrame) -> pd.DataFrame:
    """``statistics.csv`` for display: one row per metric and method, the subject-level test first.

    A variant metric whose rows equal its metric's is left out (the caption says so). The caption, in
    ``attrs["caption"]``, names the tests and the sample sizes.

    Returns
    -------
    pandas.DataFrame
        Index (Metric, Compared with); columns Subjects, Maps, the model's and the method's means, their
        difference, the subject-level p and effect size, the map-level Mann-Whitney p.
    """
    missing = [c for c in STATISTICS_COLUMNS if c not in statistics.columns]
    if missing:
        raise ValueError(
            f"the statistics table lacks the columns {missing}: it was written by an older version, re-run the stage"
        )
    values = ["reference_mean", "method_mean", "mean_difference", "p_subjects", "p_maps_mann_whitney"]
    rows, notes = [], []
    for metric in dict.fromkeys(statistics["metric"]):
        part = statistics[statistics["metric"] == metric]
        base = VARIANTS.get(metric)
        if base is not None:
            base_part = statistics[statistics["metric"] == base]
            if np.allclose(part[values].to_numpy(float), base_part[values].to_numpy(float), equal_nan=True):
                notes.append(f"{VARIANT_NOTES[metric]} equals {METRIC_FORMATS[base].name} here and is not shown.")
                continue
        style = METRIC_FORMATS[metric]
        for _, row in part.iterrows():
            rows.append(
                {
                    "Metric": style.header,
                    "Compared with": row["method"],
                    "Subjects": int(row["n_subjects"]),
                    "Maps": int(row["n_maps"]),
                    "Model": style.value(row["reference_mean"]),
                    "Method": style.value(row["method_mean"]),
                    "Difference": style.value(row["mean_difference"]),
                    "p (subjects)": format_p(row["p_subjects"]),
                    "Effect size r": MISSING
                    if np.isnan(row["rank_biserial_subjects"])
                    else f"{row['rank_biserial_subjects']:+.2f}",
                    "p (maps, Mann-Whitney)": format_p(row["p_maps_mann_whitney"]),
                }
            )
    table = pd.DataFrame(rows).set_index(["Metric", "Compared with"])
    table.attrs["caption"] = " ".join(
        [
            "The model against each method. Model, Method: means over subjects of each subject's mean; "
            "Difference: model - method. p (subjects): two-sided Wilcoxon signed-rank test over the subjects' "
            f"mean values ({_subjects_phrase(statistics['n_subjects'])}); Effect size r: its matched-pairs "
            "rank-biserial correlation (positive: the model's values tend to be larger, better for PSNR and SSIM, "
            "worse for MSE, RMSE and LPIPS). p (maps, Mann-Whitney): the paper's test, which treats every map as "
            "independent although each subject gives several; it overstates the evidence and is shown for "
            "comparison only.",
            *notes,
        ]
    )
    return table


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
