"""Figures of upscaled maps: Figure 3 (test maps, every method, error maps) and Figure 4 (the 7T validation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mrsisr.scoring.metrics import error_maps


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


def plot_figure3(figure: Mapping[str, np.ndarray], title: str) -> plt.Figure:
    """Figure 3: per example, the truth and the upscaled maps above, the input and the error maps below.

    Parameters
    ----------
    figure : mapping of str to ndarray
        The evaluation stage's examples: ``truth`` (K, H, W), ``lowres`` (K, h, w), ``pred_<method>``
        (K, H, W) and ``subject``, ``kind``, ``grade`` (K,). Predictions are shown clipped to [0, 1], as
        they are scored; the error colour scale is symmetric, up to the 99.5th percentile of the
        example's absolute errors.
    title : str
        The figure's title (names the profile and the data).
    """
    truth, lowres = figure["truth"], figure["lowres"]
    predictions = {name.removeprefix("pred_"): maps for name, maps in figure.items() if name.startswith("pred_")}
    meta = pd.DataFrame({column: figure[column] for column in ("subject", "kind", "grade")})
    methods = list(predictions)
    n_examples, n_cols = len(truth), len(methods) + 1
    fig, axes = plt.subplots(
        2 * n_examples, n_cols, figsize=(2.1 * n_cols, 4.6 * n_examples), squeeze=False, layout="constrained"
    )
    for k in range(n_examples):
        top, bottom = axes[2 * k], axes[2 * k + 1]
        info = meta.iloc[k]
        top[0].imshow(truth[k], cmap="magma", vmin=0, vmax=1)
        top[0].set_title(f"truth 128²\n{info['kind']}, {info['grade']}", fontsize=8)
        bottom[0].imshow(lowres[k], cmap="magma", vmin=0, vmax=1)
        bottom[0].set_title(f"input 32²\n{info['subject']}", fontsize=8)
        errors = {m: error_maps(predictions[m][k], truth[k]) for m in methods}
        limit = float(np.percentile(np.abs(np.stack(list(errors.values()))), 99.5)) or 1.0
        for col, method in enumerate(methods, start=1):
            top[col].imshow(np.clip(predictions[method][k], 0, 1), cmap="magma", vmin=0, vmax=1)
            top[col].set_title(method, fontsize=8)
            error = errors[method]
            mse = float(np.mean(np.square(error)))
            image = bottom[col].imshow(error, cmap="RdBu_r", vmin=-limit, vmax=limit)
            bottom[col].set_title(f"error {method}\nMSE {mse:.2g}, RMSE {np.sqrt(mse):.2g}", fontsize=8)
        fig.colorbar(image, ax=list(bottom), shrink=0.8, extend="both", label="upscaled − truth")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig


def plot_figure4(data: dict, methods: Sequence[str], title: str) -> plt.Figure:
    """Figure 4: per metabolite, the guide (first row) or the 32 x 32 input, the reference, the upscaled maps, errors.

    Parameters
    ----------
    data : dict
        The arrays of ``figure4.npz`` (``reference``, ``lowres``, ``guide``, ``kinds``, ``pred_<method>``).
    methods : sequence of str
        Methods to show, e.g. ``("model", "spline", "nearest")``.
    title : str
        Figure title (says "STAND-IN" for the simulated volume).
    """
    kinds = list(data["kinds"])
    n_cols = 2 + 2 * len(methods)
    fig, axes = plt.subplots(len(kinds), n_cols, figsize=(1.7 * n_cols, 1.9 * len(kinds) + 0.6), squeeze=False)
    for row, kind in enumerate(kinds):
        reference = data["reference"][row]
        has_anatomy = row == 0 and "guide" in data
        first = ("anatomy (guide)", data["guide"][row]) if has_anatomy else ("input 32x32", data["lowres"][row])
        panels = [first, (f"{kind} reference", reference)]
        panels += [(method, np.clip(data[f"pred_{method}"][row], 0, 1)) for method in methods]
        for col, (label, image) in enumerate(panels):
            axes[row, col].imshow(
                image.T, origin="lower", cmap="gray" if col == 0 and has_anatomy else "viridis", vmin=0, vmax=1
            )
            axes[row, col].set_title(label, fontsize=7)
        errors = [error_maps(data[f"pred_{method}"][row], reference) for method in methods]
        limit = max(float(np.percentile(np.abs(e), 99.5)) for e in errors) or 1.0
        for offset, (method, error) in enumerate(zip(methods, errors, strict=True)):
            mse = float(np.mean(error**2))
            ax = axes[row, len(panels) + offset]
            ax.imshow(error.T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{method} error\nMSE {mse:.2g} RMSE {np.sqrt(mse):.2g}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
