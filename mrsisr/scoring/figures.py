"""Figures of upscaled maps: Figure 3 (test maps, every method, error maps) and Figure 4 (the 7T validation)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mrsisr.scoring.metrics import error_maps
from mrsisr.study.figures import ERROR_CMAP, FONT_SIZE, MAP_CMAP, PAGE_WIDTH_IN, error_limit


def choose_examples(meta: pd.DataFrame, n: int, seed: int) -> list[int]:
    """Pick ``n`` test maps for Figure 3, seeded, preferring distinct grades and map kinds."""
    if not 0 < n <= len(meta):
        raise ValueError(f"cannot choose {n} examples from {len(meta)} maps")
    order = np.random.default_rng(seed).permutation(len(meta))
    chosen: list[int] = []
    for index in order:
        row = meta.iloc[index]
        if all(meta.iloc[c]["grade"] != row["grade"] and meta.iloc[c]["kind"] != row["kind"] for c in chosen):
            chosen.append(int(index))
        if len(chosen) == n:
            return sorted(chosen)
    rest = [int(i) for i in order if int(i) not in chosen]
    return sorted(chosen + rest[: n - len(chosen)])


def _wrap(text: str, width: int = 12) -> str:
    return textwrap.fill(text, width, break_long_words=False)


def _error_label(error: np.ndarray) -> str:
    """MSE and RMSE of an error map, e.g. "MSE 3.6e-3 / RMSE 0.060"."""
    mse = float(np.mean(np.square(error)))
    shown = f"{mse:.1e}".replace("e-0", "e-") if mse > 0 else "0"
    return f"MSE {shown}\nRMSE {np.sqrt(mse):.3f}"


def _map_bar(fig: plt.Figure, image, axes, label: str) -> None:
    bar = fig.colorbar(image, ax=axes, shrink=0.9, pad=0.02)
    bar.set_label(label, fontsize=FONT_SIZE)
    bar.ax.yaxis.set_major_locator(MaxNLocator(3))
    bar.ax.tick_params(labelsize=FONT_SIZE)


def plot_figure3(figure: Mapping[str, np.ndarray], title: str) -> plt.Figure:
    """Figure 3: per example, the truth and the upscaled maps above, the input and the error maps below.

    Parameters
    ----------
    figure : mapping of str to ndarray
        The evaluation stage's examples: ``truth`` (K, H, W), ``lowres`` (K, h, w), ``pred_<method>``
        (K, H, W) and ``subject``, ``kind``, ``grade`` (K,). Predictions are shown clipped to [0, 1], as
        they are scored. Maps in the study's map colour map on [0, 1]; errors (upscaled - truth) on one
        symmetric scale for the whole figure (:func:`mrsisr.study.figures.error_limit`); a colour bar for
        each.
    title : str
        The figure's title (names the profile and the data); wrapped to the page width.

    Returns
    -------
    matplotlib.figure.Figure
        Page-width figure, text of at least :data:`~mrsisr.study.figures.FONT_SIZE` pt.
    """
    truth, lowres = figure["truth"], figure["lowres"]
    predictions = {name.removeprefix("pred_"): maps for name, maps in figure.items() if name.startswith("pred_")}
    meta = pd.DataFrame({column: figure[column] for column in ("subject", "kind", "grade")})
    methods = list(predictions)
    n_examples, n_cols = len(truth), len(methods) + 1
    errors = {m: error_maps(predictions[m], truth) for m in methods}
    limit = error_limit(errors.values())
    panel = (PAGE_WIDTH_IN - 1.0) / n_cols
    fig, axes = plt.subplots(
        2 * n_examples,
        n_cols,
        figsize=(PAGE_WIDTH_IN, n_examples * 2 * (panel + 0.5) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for k in range(n_examples):
        top, bottom = axes[2 * k], axes[2 * k + 1]
        info = meta.iloc[k]
        shown = top[0].imshow(truth[k], cmap=MAP_CMAP, vmin=0, vmax=1)
        top[0].set_title(f"truth\n{info['kind']}, {info['grade']}", fontsize=FONT_SIZE)
        bottom[0].imshow(lowres[k], cmap=MAP_CMAP, vmin=0, vmax=1)
        bottom[0].set_title(f"input 32²\n{info['subject']}", fontsize=FONT_SIZE)
        for col, method in enumerate(methods, start=1):
            top[col].imshow(np.clip(predictions[method][k], 0, 1), cmap=MAP_CMAP, vmin=0, vmax=1)
            top[col].set_title(_wrap(method), fontsize=FONT_SIZE)
            image = bottom[col].imshow(errors[method][k], cmap=ERROR_CMAP, vmin=-limit, vmax=limit)
            bottom[col].set_title(_error_label(errors[method][k]), fontsize=FONT_SIZE)
        _map_bar(fig, shown, list(top), "normalised map")
        _map_bar(fig, image, list(bottom), "upscaled − truth")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(textwrap.fill(title, 85), fontsize=FONT_SIZE + 1)
    return fig


def plot_figure4(data: dict, methods: Sequence[str], title: str) -> plt.Figure:
    """Figure 4: per metabolite, the guide or the 32 x 32 input, the reference and the upscaled maps, errors below.

    Parameters
    ----------
    data : dict
        The arrays of ``figure4.npz`` (``reference``, ``lowres``, ``guide``, ``kinds``, ``pred_<method>``).
    methods : sequence of str
        Methods to show, e.g. ``("model", "spline", "nearest")``.
    title : str
        Figure title (says "STAND-IN" for the simulated volume); wrapped to the page width.

    Returns
    -------
    matplotlib.figure.Figure
        Page-width figure in the layout, colour maps and error convention of Figure 3: two rows per metabolite,
        the maps above (the first metabolite's guide in the first column, its input below it; the input first
        for the others), each method's error map (upscaled - reference) with its MSE and RMSE below its map, a
        colour bar for the maps and one for the errors.
    """
    kinds = list(data["kinds"])
    n_cols = 2 + len(methods)
    errors = [
        [error_maps(data[f"pred_{m}"][row], data["reference"][row]) for m in methods] for row in range(len(kinds))
    ]
    limit = error_limit(e for row in errors for e in row)
    panel = (PAGE_WIDTH_IN - 1.0) / n_cols
    fig, axes = plt.subplots(
        2 * len(kinds),
        n_cols,
        figsize=(PAGE_WIDTH_IN, len(kinds) * 2 * (panel + 0.45) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for row, kind in enumerate(kinds):
        top, bottom = axes[2 * row], axes[2 * row + 1]
        lowres = ("input 32²", data["lowres"][row])
        has_guide = row == 0 and "guide" in data
        first = ("FLAIR guide", data["guide"][row]) if has_guide else lowres
        panels = [first, (f"reference\n{kind}", data["reference"][row])]
        panels += [(method, np.clip(data[f"pred_{method}"][row], 0, 1)) for method in methods]
        for ax, (label, image) in zip(top, panels, strict=True):
            shown = ax.imshow(
                image.T, origin="lower", cmap="gray" if label == "FLAIR guide" else MAP_CMAP, vmin=0, vmax=1
            )
            ax.set_title(_wrap(label), fontsize=FONT_SIZE)
        if has_guide:
            bottom[0].imshow(lowres[1].T, origin="lower", cmap=MAP_CMAP, vmin=0, vmax=1)
            bottom[0].set_title(f"{lowres[0]}\n{kind}", fontsize=FONT_SIZE)
        for ax, error in zip(bottom[2:], errors[row], strict=True):
            image = ax.imshow(error.T, origin="lower", cmap=ERROR_CMAP, vmin=-limit, vmax=limit)
            ax.set_title(_error_label(error), fontsize=FONT_SIZE)
        _map_bar(fig, shown, list(top), "normalised map")
        _map_bar(fig, image, list(bottom), "upscaled − reference")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(textwrap.fill(title, 85), fontsize=FONT_SIZE + 1)
    return fig
