"""The figures as a reader sees them: text size at the book's page width, colour bars, titles, conventions."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colorbar import Colorbar

from mrsisr.anatomy.figures import plot_subject_slice
from mrsisr.network.figures import plot_architecture, plot_learning_curves
from mrsisr.network.model import build_model
from mrsisr.scoring.figures import plot_figure3, plot_figure4
from mrsisr.study.figures import ERROR_CMAP, MAP_CMAP, error_limit, plot_map_row

PAGE_PX = 780  # the book's page width in CSS pixels (96 per inch), where a figure is shown at width 100 %
MIN_PT = 9.0


def _texts(fig: plt.Figure) -> list[matplotlib.text.Text]:
    """Every text a reader sees: titles, labels, tick labels of visible axes, free text, legends."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label, ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text()]
            texts += ax.get_xticklabels(which="both") + ax.get_yticklabels(which="both")
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def displayed_sizes(fig: plt.Figure, page_px: float = PAGE_PX) -> dict[str, float]:
    """Each text's size in points when the figure, saved with a tight box, is shown ``page_px`` pixels wide."""
    fig.canvas.draw()
    saved_width = fig.get_tightbbox(fig.canvas.get_renderer()).width + 2 * plt.rcParams["savefig.pad_inches"]
    scale = (page_px / 96) / saved_width
    return {t.get_text(): t.get_fontsize() * scale for t in _texts(fig)}


def _assert_readable(fig: plt.Figure, page_px: float = PAGE_PX) -> None:
    sizes = displayed_sizes(fig, page_px)
    small = {text: round(size, 1) for text, size in sizes.items() if size < MIN_PT}
    assert sizes and not small, f"text below {MIN_PT} pt at {page_px} px: {small}"


def _colorbars(fig: plt.Figure) -> list[Colorbar]:
    return [ax._colorbar for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def _maps(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size)).astype(np.float32)


def test_displayed_size_scales_with_the_saved_width() -> None:
    fig = plt.figure(figsize=(8.125 - 0.2, 2))  # 780 px at 96 px/in once the 0.1 in padding is added
    fig.text(0.0, 0.0, "edge to edge", fontsize=9)
    fig.text(1.0, 1.0, ".", fontsize=9, ha="right", va="top")
    fig.add_artist(matplotlib.patches.Rectangle((0, 0), 1, 1, transform=fig.transFigure, fill=False))
    assert displayed_sizes(fig)["edge to edge"] == pytest.approx(9.0, rel=0.02)
    assert displayed_sizes(fig, PAGE_PX / 2)["edge to edge"] == pytest.approx(4.5, rel=0.02)
    plt.close(fig)


def test_figure3_readable_with_map_and_error_colorbars() -> None:
    truth = _maps(2)
    methods = {"model": truth * 0.9, "model + data consistency": truth * 0.95, "nearest": truth, "spline": truth + 0.05}
    figure = {"truth": truth, "lowres": truth[:, ::4, ::4]} | {f"pred_{m}": p for m, p in methods.items()}
    figure |= {"subject": np.array(["phantom_034", "phantom_043"]), "kind": np.array(["tCr", "NAA"])}
    figure |= {"grade": np.array(["HGG", "LGG"])}
    fig = plot_figure3(
        figure, "Figure 3 · test maps (demo profile, maps synthesised from the synthetic phantom cohort)"
    )
    _assert_readable(fig)
    bars = _colorbars(fig)
    assert [bar.ax.get_ylabel() for bar in bars] == ["normalised map", "upscaled − truth"] * 2
    maps, errors = bars[0].mappable, bars[1].mappable
    assert maps.get_cmap().name == MAP_CMAP and errors.get_cmap().name == ERROR_CMAP
    limit = error_limit(np.clip(p, 0, 1) - truth for p in methods.values())
    assert errors.get_clim() == pytest.approx((-limit, limit))  # one symmetric scale for the figure
    assert bars[3].mappable.get_clim() == pytest.approx((-limit, limit))
    plt.close(fig)


def test_figure4_readable_with_colorbars_in_figure3s_convention() -> None:
    reference = _maps(3)
    data = {
        "reference": reference,
        "lowres": reference[:, ::4, ::4],
        "guide": reference,
        "kinds": ["NAA", "tCr", "tCho"],
    }
    data |= {"pred_model": reference, "pred_spline": reference * 0.9, "pred_nearest": reference * 0.8}
    fig = plot_figure4(data, ["model", "spline", "nearest"], "Figure 4 · STAND-IN: simulated 7T-like MRSI, slice 22")
    _assert_readable(fig)
    bars = _colorbars(fig)
    assert len(bars) == 2 * 3 and {bar.mappable.get_cmap().name for bar in bars} == {MAP_CMAP, ERROR_CMAP}
    assert len([ax for ax in fig.axes if ax.images]) == 3 * 5 + 3 * 3 + 1  # maps, errors, the first input
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["FLAIR guide", "reference\nNAA"] and "MSE 0\nRMSE 0.000" in titles
    plt.close(fig)


def test_figure1_rows_readable() -> None:
    volume = np.repeat(_maps(1, 48)[0][:, :, None], 4, axis=2)
    arrays = {key: volume for key in ("t1", "flair", "gm", "wm", "csf")} | {"labels": (volume > 0.9).astype(int)}
    fig = plot_subject_slice(arrays, 1, "phantom_000 (demo profile, phantom anatomy), slice 1")
    _assert_readable(fig)
    assert len(_colorbars(fig)) == 5
    assert [ax.images[0].get_cmap().name for ax in fig.axes if ax.images][2:5] == [MAP_CMAP] * 3
    plt.close(fig)
    fig = plot_map_row(
        {kind: m for kind, m in zip(["tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr"], _maps(5), strict=True)}
    )
    _assert_readable(fig)
    assert len(_colorbars(fig)) == 1
    plt.close(fig)


def test_architecture_readable_plain_title_and_skips_clear_of_boxes() -> None:
    model = build_model(width=8, mid_width=4, n_pairs=8)
    fig = plot_architecture(model)
    _assert_readable(fig)
    title = fig.get_suptitle()
    assert title.startswith("The super-resolution network of this run, guided by the FLAIR slice: 8 pairs")
    assert model.name not in title
    ax = fig.axes[0]
    boxes = [p.get_bbox() for p in ax.patches if p.get_fill()]  # the blocks (the pair's frame is unfilled)
    for line in ax.lines:  # the skips' segments
        xs, ys = line.get_data()
        for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True)):
            for box in boxes:
                inside_x = min(x0, x1) < box.x1 - 1e-6 and max(x0, x1) > box.x0 + 1e-6
                inside_y = min(y0, y1) < box.y1 - 1e-6 and max(y0, y1) > box.y0 + 1e-6
                assert not (inside_x and inside_y), f"skip segment {(x0, y0)}-{(x1, y1)} crosses a box {box}"
    assert "one pair, repeated 8 times" in [t.get_text() for t in ax.texts]
    plt.close(fig)
    unguided = plot_architecture(build_model(width=8, mid_width=4, n_pairs=2, guided=False, global_skip="bilinear"))
    texts = [t.get_text() for t in unguided.axes[0].texts]
    assert "bilinear ×4" in texts and "FLAIR" not in texts and "without a guide" in unguided.get_suptitle()
    plt.close(unguided)


def test_learning_curves_readable_at_80_percent_with_whole_epochs() -> None:
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss": [2e-3, 1.5e-3, 1.2e-3], "val_loss": [1.8e-3, 1.4e-3, 1.3e-3]}
        | {"learning_rate": [2e-3, 1.9e-3, 1.7e-3], "seconds": [10.0, 9.0, 9.0]}
    )
    fig = plot_learning_curves(history)
    _assert_readable(fig, 0.8 * PAGE_PX)  # the results page shows it at 80 % width
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert ticks and all(t.lstrip("−-").isdigit() for t in ticks) and "0" not in ticks[1:]
    plt.close(fig)
