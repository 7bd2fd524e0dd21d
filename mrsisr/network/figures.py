"""Figures of notebook 03: the architecture drawn from a built model (the paper's Figure 2) and learning curves."""

from __future__ import annotations

import re

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch

# how each layer of mrsisr.network.model.build_model is named in the paper's vocabulary
BLOCK_LABELS = {
    "lr": "LR map",
    "guide": "FLAIR",
    "space_to_depth": "Space-to-\ndepth x4",
    "concat_guide": "Concat",
    "head_conv": "Conv 3x3\n(head)",
    "erb": "ERB",
    "hfab": "HFAB",
    "gdfn": "GDFN",
    "long_skip": "+",
    "tail_conv": "Conv 3x3\n(tail)",
    "depth_to_space": "Depth-to-\nspace x4",
    "lr_upsample": "k-space x4",
    "sr": "+",
}
COLOURS = {"erb": "#9ecae1", "hfab": "#fdae6b", "gdfn": "#a1d99b"}
PAIR = re.compile(r"pair(\d+)_(erb|hfab|gdfn)$")


def _shape(layer: keras.layers.Layer) -> str:
    return "x".join(str(s) for s in layer.output.shape[1:])


def _box(ax, x, y, text, colour="#eeeeee", width=0.9, height=0.55):
    ax.add_patch(
        FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.03", fc=colour, ec="k")
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


def _arrow(ax, start, end, colour="k"):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 0.8, "color": colour})


def _skip(ax, start_x, end_x, y_from, y_level, colour):
    """A skip connection: up (or down) from ``start_x``, across at ``y_level``, into the box at ``end_x``."""
    ax.plot([start_x, start_x, end_x], [y_from, y_level, y_level], color=colour, lw=0.8)
    _arrow(ax, (end_x, y_level), (end_x, y_from), colour)


def plot_architecture(model: keras.Model) -> plt.Figure:
    """Draw ``model`` as boxes and arrows, every block labelled as in the paper, from its own layers.

    The main path runs left to right; each trunk pair is a column (ERB, HFAB, GDFN from top to bottom);
    the long skip and the interpolated-map skip are drawn as arcs. Output shapes are printed under the boxes.
    """
    layers = {layer.name: layer for layer in model.layers}
    pairs: dict[int, list[str]] = {}
    for name in layers:
        match = PAIR.match(name)
        if match:
            pairs.setdefault(int(match.group(1)), []).append(match.group(2))
    main = [n for n in ("space_to_depth", "concat_guide", "head_conv") if n in layers]
    tail = ["long_skip", "tail_conv", "depth_to_space", "sr"]
    n_columns = len(main) + len(pairs) + len(tail) + 2
    fig, ax = plt.subplots(figsize=(max(10, 0.95 * n_columns), 4.2))
    x = 0.0
    guided = "guide" in layers
    _box(ax, x, 1.0, f"{BLOCK_LABELS['lr']}\n{_shape(layers['lr'])}", "#ffffff")
    if guided:
        _box(ax, x, 2.0, f"{BLOCK_LABELS['guide']}\n{_shape(layers['guide'])}", "#ffffff")
    previous = (x, 1.0)
    for name in main:
        x += 1.2
        y = 2.0 if name == "space_to_depth" else 1.0
        _box(ax, x, y, BLOCK_LABELS[name])
        ax.text(x, y - 0.38, _shape(layers[name]), ha="center", fontsize=6)
        _arrow(ax, (0.45 if name == "concat_guide" else x - 0.75, y), (x - 0.45, y))
        if name == "concat_guide":
            _arrow(ax, (x - 1.2, 1.7), (x - 0.2, 1.3))
        previous = (x, y)
    head_x = previous[0]
    for index in sorted(pairs):
        x += 1.05
        for row, kind in enumerate(pairs[index]):
            name = f"pair{index}_{kind}"
            y = 1.62 - 0.62 * row
            _box(ax, x, y, f"{BLOCK_LABELS[kind]}\n{layers[name].count_params():,}", COLOURS[kind], 0.8, 0.5)
        ax.text(x, 1.95, f"pair {index}", ha="center", fontsize=7)
        _arrow(ax, (x - 0.65, 1.0), (x - 0.42, 1.0))
    for name in tail:
        x += 1.2
        _box(ax, x, 1.0, BLOCK_LABELS[name], width=0.5 if name in ("long_skip", "sr") else 0.9)
        ax.text(x, 0.62, _shape(layers[name]), ha="center", fontsize=6)
        _arrow(ax, (x - 0.75, 1.0), (x - 0.45, 1.0))
        if name == "long_skip":
            _skip(ax, head_x, x, 1.28, 2.25, "C3")
    _skip(ax, 0.0, x, 0.72, -0.45, "C0")
    _box(ax, (x + 1.0) / 2, -0.45, BLOCK_LABELS["lr_upsample"], "#ffffff", height=0.4)
    ax.text(x + 0.7, 1.0, "SR map\n" + _shape(layers["sr"]), va="center", fontsize=7)
    ax.set_xlim(-0.7, x + 1.5)
    ax.set_ylim(-0.8, 2.45)
    ax.set_axis_off()
    n_params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    ax.set_title(f"{model.name}: {len(pairs)} pairs, {n_params:,} trainable parameters (numbers in boxes)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Plot training and validation log-cosh loss per epoch (log scale) and the learning rate."""
    fig, (loss_ax, rate_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.semilogy(history["epoch"], history["loss"], "o-", ms=3, label="training")
    loss_ax.semilogy(history["epoch"], history["val_loss"], "s-", ms=3, label="validation")
    loss_ax.set(xlabel="epoch", ylabel="log-cosh loss")
    loss_ax.legend()
    rate_ax.plot(history["epoch"], history["learning_rate"], "k.-")
    rate_ax.set(xlabel="epoch", ylabel="learning rate (end of epoch)")
    fig.tight_layout()
    return fig
