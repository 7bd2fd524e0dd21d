"""Figures of notebook 06: the stress tests (one panel per factor) and the ablation's PSNR differences."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mrsisr.study.figures import FONT_SIZE, PAGE_WIDTH_IN

METHOD_STYLE = {"model": {"color": "#b2182b", "marker": "o"}, "spline": {"color": "#2166ac", "marker": "s"}}
PANELS_PER_ROW = 3


def plot_stress(summary: pd.DataFrame, title: str, metric: str = "psnr") -> plt.Figure:
    """One panel per stress factor: mean ``metric`` of the network and the spline against the factor's level.

    Parameters
    ----------
    summary : DataFrame
        :func:`mrsisr.scoring.stress.stress_summary` (``factor, value, level, method, <metric>_mean,
        <metric>_std``).
    title : str
        The figure's title (names the profile and the data).
    metric : {"psnr", "ssim"}
        The score on the y axes; the bars are one standard deviation over the test maps.
    """
    factors = list(dict.fromkeys(summary["factor"]))
    n_rows = -(-len(factors) // PANELS_PER_ROW)
    fig, axes = plt.subplots(
        n_rows, PANELS_PER_ROW, figsize=(PAGE_WIDTH_IN, 2.7 * n_rows), squeeze=False, layout="constrained"
    )
    label = {"psnr": "PSNR (dB)", "ssim": "SSIM"}[metric]
    for ax, factor in zip(axes.ravel(), factors, strict=False):
        part = summary[summary["factor"] == factor]
        levels = list(dict.fromkeys(part["level"]))
        for offset, (method, style) in zip((-0.06, 0.06), METHOD_STYLE.items(), strict=True):
            rows = part[part["method"] == method].set_index("level").loc[levels]
            ax.errorbar(
                np.arange(len(levels)) + offset,
                rows[f"{metric}_mean"],
                yerr=rows[f"{metric}_std"],
                label="network" if method == "model" else "cubic spline",
                capsize=3,
                linewidth=1.2,
                **style,
            )
        ax.set_xticks(range(len(levels)), [_short(level) for level in levels], fontsize=FONT_SIZE - 1)
        ax.set_title(factor, fontsize=FONT_SIZE)
        ax.set_ylabel(label, fontsize=FONT_SIZE)
        ax.tick_params(labelsize=FONT_SIZE - 1)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(factors) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=FONT_SIZE - 1)
    fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def _short(level: str) -> str:
    """A level's tick label: the leading value of long labels, with line breaks instead of spaces."""
    return level.replace(" of the map's maximum", "").replace(" (as trained)", "\n(trained)").replace(" (", "\n(")


def plot_ablation(table: pd.DataFrame, title: str) -> plt.Figure:
    """The mean PSNR difference of every network from the study's network, with the seed SD as a band.

    Parameters
    ----------
    table : DataFrame
        :func:`mrsisr.stages.beyond.ablation_table` (``variant, psnr_difference, psnr_seed_sd``).
    title : str
        The figure's title (names the profile, the data and the training budget).
    """
    rows = table.iloc[::-1]
    width = PAGE_WIDTH_IN * 0.8
    title = textwrap.fill(title, width=int(width * 9))  # about nine characters per inch at FONT_SIZE
    height = 0.45 * len(rows) + 1.2 + 0.2 * title.count("\n")
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    ax.set_title(title, fontsize=FONT_SIZE)
    if rows.empty:
        ax.text(0.5, 0.5, "no network was trained (beyond_variants is empty)", ha="center", fontsize=FONT_SIZE)
        ax.axis("off")
        return fig
    colours = ["#b2182b" if value < 0 else "#2166ac" for value in rows["psnr_difference"]]
    ax.barh(rows["variant"], rows["psnr_difference"], color=colours)
    seed_sd = float(table["psnr_seed_sd"].iloc[0])
    if np.isfinite(seed_sd):
        ax.axvspan(-seed_sd, seed_sd, color="grey", alpha=0.25, label="± 1 SD of the study's network over seeds")
        ax.legend(fontsize=FONT_SIZE - 1, loc="upper left")  # over the top row, the study's network (0)
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_xlabel("mean PSNR minus the study's network (dB)", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE)
    return fig
