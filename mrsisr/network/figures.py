"""Figures of notebook 03: the architecture drawn from a built model (the paper's Figure 2), learning curves and
the training-speed benchmark's test PSNR against training time."""

from __future__ import annotations

import re

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MaxNLocator

from mrsisr.study.figures import FONT_SIZE, PAGE_WIDTH_IN

# how each layer of mrsisr.network.model.build_model is named in the paper's vocabulary
BLOCK_LABELS = {
    "lr": "LR map",
    "guide": "FLAIR",
    "space_to_depth": "Space-to-\ndepth ×4",
    "guide_conv2": "Strided\nconv ×2",
    "concat_guide": "Concat",
    "head_conv": "Conv 3×3\nhead",
    "erb": "ERB",
    "hfab": "HFAB",
    "gdfn": "GDFN",
    "long_skip": "+",
    "tail_conv": "Conv 3×3\ntail",
    "depth_to_space": "Depth-to-\nspace ×4",
    "sr": "+",
}
SKIP_LABELS = {"KSpaceUpsample": "k-space ×4", "UpSampling2D": "bilinear ×4"}
COLOURS = {"erb": "#9ecae1", "hfab": "#fdae6b", "gdfn": "#a1d99b"}
PAIR = re.compile(r"pair(\d+)_(erb|hfab|gdfn)$")
BOX_HEIGHT = 0.5  # inches: the axes span the figure, one data unit per inch
MAIN_Y, TOP_Y, SKIP_Y = 1.75, 2.75, 0.45


def _shape(layer: keras.layers.Layer) -> str:
    return "×".join(str(s) for s in layer.output.shape[1:])


def _box(ax, x: float, y: float, text: str, width: float, colour: str = "#eeeeee", height: float = BOX_HEIGHT):
    ax.add_patch(
        FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.02", fc=colour, ec="k")
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=FONT_SIZE)


def _arrow(ax, start, end, colour="k"):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 1.0, "color": colour})


def _pairs(layers: dict) -> dict[int, list[str]]:
    pairs: dict[int, list[str]] = {}
    for name in layers:
        match = PAIR.match(name)
        if match:
            pairs.setdefault(int(match.group(1)), []).append(match.group(2))
    return pairs


def plot_architecture(model: keras.Model) -> plt.Figure:
    """Draw ``model`` as boxes and arrows, every block labelled as in the paper, from its own layers.

    The main path runs left to right at page width (text of at least
    :data:`~mrsisr.study.figures.FONT_SIZE` pt): the guide's entry above it, the trunk as one pair (ERB, HFAB,
    GDFN with their parameter counts) in a frame that says how often it repeats, the long skip above the
    trunk and the global skip (the interpolated low-resolution map) below everything; no line crosses a box.
    Output shapes are printed under the boxes.
    """
    layers = {layer.name: layer for layer in model.layers}
    pairs = _pairs(layers)
    kinds = pairs[min(pairs)] if pairs else []
    guide_entry = next((n for n in ("space_to_depth", "guide_conv2") if n in layers), None)
    steps = [("lr", 0.75)] + ([("concat_guide", 0.7)] if "concat_guide" in layers else []) + [("head_conv", 0.85)]
    steps += [(kind, 0.7) for kind in kinds]
    steps += [("long_skip", 0.35), ("tail_conv", 0.85), ("depth_to_space", 0.85), ("sr", 0.35)]
    gap = 0.16
    width = sum(w for _, w in steps) + gap * (len(steps) - 1) + 0.3
    fig = plt.figure(figsize=(width, 3.4))
    ax = fig.add_axes((0, 0, 1, 1))
    x, centres = 0.15, {}
    for index, (name, box_width) in enumerate(steps):
        centres[name] = (x + box_width / 2, box_width)
        if index:
            previous = centres[steps[index - 1][0]]
            _arrow(ax, (previous[0] + previous[1] / 2, MAIN_Y), (x, MAIN_Y))
        x += box_width + gap
    for name, (cx, box_width) in centres.items():
        if name in kinds:
            params = layers[f"pair{min(pairs)}_{name}"].count_params()
            _box(ax, cx, MAIN_Y, f"{BLOCK_LABELS[name]}\n{params:,}", box_width, COLOURS[name])
        elif name == "lr":
            _box(ax, cx, MAIN_Y, BLOCK_LABELS[name], box_width, "#ffffff")
        else:
            _box(ax, cx, MAIN_Y, BLOCK_LABELS[name], box_width)
        if name not in (*kinds, "long_skip", "sr"):  # a sum has the shape of its inputs
            ax.text(cx, MAIN_Y - BOX_HEIGHT / 2 - 0.08, _shape(layers[name]), ha="center", va="top", fontsize=FONT_SIZE)
    if kinds:
        left = centres[kinds[0]][0] - centres[kinds[0]][1] / 2 - 0.08
        right = centres[kinds[-1]][0] + centres[kinds[-1]][1] / 2 + 0.08
        ax.add_patch(
            FancyBboxPatch(
                (left, MAIN_Y - 0.42), right - left, 0.98, boxstyle="round,pad=0.02", fc="none", ec="0.4", ls="--"
            )
        )
        ax.text(
            (left + right) / 2, MAIN_Y + 0.42, f"one pair, repeated {len(pairs)} times", ha="center", fontsize=FONT_SIZE
        )
    if guide_entry is not None:
        cx = centres["concat_guide"][0]
        lr_x, lr_width = centres["lr"]
        _box(ax, lr_x, TOP_Y, BLOCK_LABELS["guide"], lr_width, "#ffffff")
        ax.text(lr_x, TOP_Y - BOX_HEIGHT / 2 - 0.08, _shape(layers["guide"]), ha="center", va="top", fontsize=FONT_SIZE)
        _box(ax, cx, TOP_Y, BLOCK_LABELS[guide_entry], 0.75)
        _arrow(ax, (lr_x + lr_width / 2, TOP_Y), (cx - 0.375, TOP_Y))
        _arrow(ax, (cx, TOP_Y - BOX_HEIGHT / 2), (cx, MAIN_Y + BOX_HEIGHT / 2))
    # long skip: from the head's output over the trunk frame into the first "+"
    head, plus = centres["head_conv"][0], centres["long_skip"][0]
    top = TOP_Y + 0.05
    ax.plot([head, head, plus], [MAIN_Y + BOX_HEIGHT / 2, top, top], color="C3", lw=1.2)
    _arrow(ax, (plus, top), (plus, MAIN_Y + BOX_HEIGHT / 2), "C3")
    ax.text((head + plus) / 2, top + 0.06, "long skip", ha="center", va="bottom", color="C3", fontsize=FONT_SIZE)
    # global skip: the low-resolution map, interpolated x4, into the last "+", below every box
    lr, out = centres["lr"][0] - 0.3, centres["sr"][0]  # off the centre: clear of the shape printed below
    skip_name = SKIP_LABELS.get(type(layers["lr_upsample"]).__name__, "upsample ×4")
    middle, skip_width = (lr + out) / 2, 1.1
    ax.plot([lr, lr, middle - skip_width / 2], [MAIN_Y - BOX_HEIGHT / 2, SKIP_Y, SKIP_Y], color="C0", lw=1.2)
    ax.plot([middle + skip_width / 2, out], [SKIP_Y, SKIP_Y], color="C0", lw=1.2)
    _arrow(ax, (out, SKIP_Y), (out, MAIN_Y - BOX_HEIGHT / 2), "C0")
    _box(ax, middle, SKIP_Y, skip_name, skip_width, "#ffffff", height=0.4)
    sr_map = f"SR map\n{_shape(layers['sr'])}"
    ax.text(out, MAIN_Y + BOX_HEIGHT / 2 + 0.1, sr_map, ha="center", va="bottom", fontsize=FONT_SIZE)
    ax.set_xlim(0, width)
    ax.set_ylim(0.15, 3.55)
    ax.set_axis_off()
    n_params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    guided = "guided by the FLAIR slice" if guide_entry else "without a guide"
    fig.suptitle(
        f"The super-resolution network of this run, {guided}: {len(pairs)} pairs, {n_params:,} trainable parameters"
        "\n(the number in a block: its trainable parameters; under a block: its output shape)",
        fontsize=FONT_SIZE,
        y=0.995,
        va="top",
    )
    return fig


def plot_learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Plot training and validation log-cosh loss per epoch (log scale) and the learning rate, at page width.

    Epochs are numbered from 1, as ``history.csv`` numbers them (epochs completed), on integer ticks.
    """
    fig, (loss_ax, rate_ax) = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN * 0.8, 2.9), layout="constrained")
    loss_ax.semilogy(history["epoch"], history["loss"], "o-", ms=4, label="training")
    loss_ax.semilogy(history["epoch"], history["val_loss"], "s-", ms=4, label="validation")
    loss_ax.set_ylabel("log-cosh loss", fontsize=FONT_SIZE)
    loss_ax.legend(fontsize=FONT_SIZE)
    rate_ax.plot(history["epoch"], history["learning_rate"], "k.-")
    rate_ax.set_ylabel("learning rate (end of epoch)", fontsize=FONT_SIZE)
    rate_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (loss_ax, rate_ax):
        ax.set_xlabel("epoch", fontsize=FONT_SIZE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=FONT_SIZE, which="both")
        ax.yaxis.get_offset_text().set_fontsize(FONT_SIZE)
    return fig


def plot_benchmark_curves(results: dict) -> plt.Figure:
    """Plot each recipe's mean test PSNR against its training seconds, from ``benchmarks/benchmark_model.py``'s results.

    The dashed line is the baseline's final PSNR, the quality the time-to-quality ratio measures against.
    """
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN * 0.6, 3.2), layout="constrained")
    for name, recipe in results["recipes"].items():
        curve = recipe["curve"]
        ax.plot([p["seconds"] for p in curve], [p["test_psnr"] for p in curve], "o-", ms=4, label=name)
    ax.axhline(results["reference_psnr"], color="grey", linestyle="--", label="baseline's final PSNR")
    ax.set_xlabel("training seconds (wall clock, validation included)", fontsize=FONT_SIZE)
    ax.set_ylabel("mean test PSNR (dB)", fontsize=FONT_SIZE)
    machine = results["machine"]
    ax.set_title(f"{results['profile']} data, {machine['cpu']}, {machine['cores']} cores", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.legend(fontsize=FONT_SIZE)
    return fig
