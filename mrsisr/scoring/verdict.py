"""The reproduction's verdict: the paper's gains between methods beside this run's, judged by a stated rule.

A *gain* says how much better one method is than another on one metric, signed so that a positive gain
means the first method is better: the PSNR (dB) and SSIM gains are differences of means (first minus
second), the LPIPS gain is the reduction of the mean LPIPS (second minus first). The paper's claim is an
ordering with gaps: the network ahead of the cubic spline, the spline ahead of nearest neighbour, on every
metric (:data:`COMPARISONS` x :data:`METRICS`). Each gain of this run is judged against the paper's:

- **reproduced**: same sign as the paper's gain, and within a factor :data:`SIZE_FACTOR` of it;
- **smaller** / **larger**: same sign, but more than :data:`SIZE_FACTOR` times smaller or larger;
- **not reproduced**: zero or of the opposite sign (the ordering itself fails);
- **not measured**: one of the two methods was not run.

The paper prints its means to :data:`PAPER_DECIMALS` decimals, so a difference of two of them is known only
to within one unit of the last decimal; the size rule allows for that (a printed SSIM gain of 0.01 may be
anything from 0 to 0.02). The verdict reads means only; the tests of the differences are in notebook 04.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mrsisr.scoring.tables import MISSING, paper_table2
from mrsisr.study.figures import FONT_SIZE, PAGE_WIDTH_IN

#: (better, worse) method pairs of the paper's claim.
COMPARISONS: tuple[tuple[str, str], ...] = (("model", "spline"), ("spline", "nearest"))
#: Metrics of the verdict; lower is better for LPIPS, so its gain is a reduction.
METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips")
LOWER_IS_BETTER = frozenset({"lpips"})
#: Decimals of the paper's Table 2 means.
PAPER_DECIMALS: Mapping[str, int] = {"psnr": 2, "ssim": 2, "lpips": 2}
#: A gain within this factor of the paper's (either way) counts as reproduced in size.
SIZE_FACTOR = 2.0
METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS"}
METHOD_NAMES = {"model": "the network", "spline": "the cubic spline", "nearest": "nearest neighbour"}
UNITS = {"psnr": " dB", "ssim": "", "lpips": ""}
STATUSES = ("reproduced", "smaller", "larger", "not reproduced", "not measured")


def _gain(means: Mapping[str, float], metric: str, better: str, worse: str) -> float:
    if better not in means or worse not in means:
        return math.nan
    difference = float(means[better]) - float(means[worse])
    return -difference if metric in LOWER_IS_BETTER else difference


def judge(ours: float, paper: float, metric: str) -> str:
    """Judge one gain of this run against the paper's (one of :data:`STATUSES`; rule in the module docstring)."""
    if math.isnan(ours):
        return "not measured"
    if ours <= 0:
        return "not reproduced"
    slack = 10.0 ** -PAPER_DECIMALS[metric]
    if ours < (paper - slack) / SIZE_FACTOR:
        return "smaller"
    if ours > (paper + slack) * SIZE_FACTOR:
        return "larger"
    return "reproduced"


def gains(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's gains and this run's, one row per metric and comparison, each judged.

    Parameters
    ----------
    summary : pandas.DataFrame
        Table 2 in numbers (:func:`mrsisr.scoring.tables.summary_table`): a ``method`` column and
        ``<metric>_mean`` columns for every metric of :data:`METRICS`.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, better, worse, paper, ours, status``; gains are positive when ``better`` is.

    Raises
    ------
    ValueError
        If ``summary`` lacks the ``method`` column or a metric's ``_mean`` column.
    """
    missing = [c for c in ("method", *(f"{m}_mean" for m in METRICS)) if c not in summary.columns]
    if missing:
        raise ValueError(f"the Table 2 summary lacks the columns {missing}")
    paper = paper_table2()["methods"]
    rows = []
    for metric in METRICS:
        ours_means = dict(zip(summary["method"], summary[f"{metric}_mean"], strict=True))
        paper_means = {method: values[metric] for method, values in paper.items() if metric in values}
        for better, worse in COMPARISONS:
            reported = round(_gain(paper_means, metric, better, worse), PAPER_DECIMALS[metric])
            measured = _gain(ours_means, metric, better, worse)
            rows.append(
                {
                    "metric": metric,
                    "better": better,
                    "worse": worse,
                    "paper": reported,
                    "ours": measured,
                    "status": judge(measured, reported, metric),
                }
            )
    return pd.DataFrame(rows)


def gain_values(table: pd.DataFrame) -> dict[str, float]:
    """This run's gains as ``gain_<metric>_<better>_<worse>`` numbers (the glue keys of notebook 04)."""
    return {f"gain_{row.metric}_{row.better}_{row.worse}": float(row.ours) for row in table.itertuples()}


def verdict_table(table: pd.DataFrame) -> pd.DataFrame:
    """The :func:`gains` as the landing page shows them: one row per gain, signed values, "-" where not measured."""
    rows = []
    for row in table.itertuples():
        digits = PAPER_DECIMALS[row.metric] + 1
        unit = UNITS[row.metric]
        rows.append(
            {
                "gain": f"{METRIC_NAMES[row.metric]}{' (dB)' if unit else ''}, {row.better} over {row.worse}",
                "paper": f"{row.paper:+.{PAPER_DECIMALS[row.metric]}f}",
                "this run": MISSING if math.isnan(row.ours) else f"{row.ours:+.{digits}f}",
                "verdict": row.status,
            }
        )
    return pd.DataFrame(rows).set_index("gain")


def _phrase(row) -> str:
    unit = UNITS[row.metric]
    digits = PAPER_DECIMALS[row.metric] + 1
    subject = f"{METHOD_NAMES[row.better]}'s {METRIC_NAMES[row.metric]} gain over {METHOD_NAMES[row.worse]}"
    if row.status == "not measured":
        return f"{subject} was not measured (a method was not run)"
    numbers = f"{row.ours:+.{digits}f}{unit} against the paper's {row.paper:+.{PAPER_DECIMALS[row.metric]}f}{unit}"
    if row.status == "not reproduced":
        better, worse = METHOD_NAMES[row.better], METHOD_NAMES[row.worse]
        return f"{better} is not ahead of {worse} on {METRIC_NAMES[row.metric]} ({numbers})"
    return f"{subject} is {row.status} ({numbers})"


def verdict_sentence(table: pd.DataFrame) -> str:
    """One sentence, chosen from the :func:`gains`: is the paper's claim reproduced, and where not."""
    failed = table[table["status"].isin(["not reproduced", "not measured"])]
    sized = table[table["status"].isin(["smaller", "larger"])]
    claim = "the network ahead of the cubic spline and the spline ahead of nearest neighbour on PSNR, SSIM and LPIPS"
    if failed.empty and sized.empty:
        return (
            f"The paper's claim is reproduced: {claim}, every gain within a factor of {SIZE_FACTOR:g} of the paper's."
        )
    size_part = "; ".join(_phrase(row) for row in sized.itertuples())
    if failed.empty:
        return f"The paper's ordering is reproduced ({claim}), its gains only in part: {size_part}."
    fail_part = "; ".join(_phrase(row) for row in failed.itertuples())
    tail = f". Where the ordering holds, not every gain has the paper's size: {size_part}" if size_part else ""
    return f"The paper's claim is not reproduced in full: {fail_part}{tail}."


def level_sentence(summary: pd.DataFrame, metric: str = "psnr") -> str:
    """How far this run's mean scores lie from the paper's, per method of the paper, in one sentence."""
    paper = paper_table2()["methods"]
    means = dict(zip(summary["method"], summary[f"{metric}_mean"], strict=True))
    parts = []
    for method in ("nearest", "spline", "model"):
        if method in means and metric in paper.get(method, {}):
            offset = float(means[method]) - float(paper[method][metric])
            direction = "higher" if offset >= 0 else "lower"
            parts.append(
                f"{direction} by {abs(offset):.2f}{UNITS[metric]} for {METHOD_NAMES[method]} "
                f"({float(means[method]):.2f} against {paper[method][metric]:.2f}{UNITS[metric]})"
            )
    if not parts:
        return f"None of the paper's methods was run, so no {METRIC_NAMES[metric]} can be set beside the paper's."
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Against the paper's Table 2, this run's mean {METRIC_NAMES[metric]} is {listed}."


def plot_verdict(table: pd.DataFrame, title: str) -> plt.Figure:
    """Bar chart of the :func:`gains`: per metric, the paper's gain and this run's for each comparison.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`gains`.
    title : str
        The figure's title (names the profile and the data).
    """
    fig, axes = plt.subplots(1, len(METRICS), figsize=(PAGE_WIDTH_IN, 3.2), layout="constrained")
    width = 0.38
    for ax, metric in zip(axes, METRICS, strict=True):
        rows = table[table["metric"] == metric]
        positions = np.arange(len(rows))
        ours = rows["ours"].fillna(0.0).to_numpy()
        ax.bar(positions - width / 2, rows["paper"], width, label="paper", color="#9e9e9e")
        ax.bar(positions + width / 2, ours, width, label="this run", color="#b5367a")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(positions, [f"{b}\nover {w}" for b, w in zip(rows["better"], rows["worse"], strict=True)])
        gain = "reduction" if metric in LOWER_IS_BETTER else "gain"
        ax.set_title(f"{METRIC_NAMES[metric]} {gain}{UNITS[metric] and ' (dB)'}", fontsize=FONT_SIZE)
        ax.tick_params(labelsize=FONT_SIZE)
    axes[0].legend(fontsize=FONT_SIZE, frameon=False)
    fig.suptitle(title, fontsize=FONT_SIZE)
    return fig
