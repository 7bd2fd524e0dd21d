"""The study's figure conventions, shared by every figure, and rows of maps with a colour bar.

Conventions (every figure of the book follows them):

- figures are drawn at :data:`PAGE_WIDTH_IN` inches or less with text of at least :data:`FONT_SIZE` points: the
  book shows a figure at the page's width, about 780 px (8.1 in at 96 px per inch), so no label is smaller than
  9 pt there;
- metabolite maps (and tissue fractions) in :data:`MAP_CMAP` on [0, 1]; anatomy in grey;
- error maps (upscaled - truth) in :data:`ERROR_CMAP`, symmetric around 0, up to :func:`error_limit` of all the
  error maps of the figure (one scale per figure), with a colour bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

PAGE_WIDTH_IN = 8.0
FONT_SIZE = 10.0
MAP_CMAP = "inferno"
ERROR_CMAP = "RdBu_r"
ERROR_PERCENTILE = 99.5


def error_limit(errors: Iterable[np.ndarray]) -> float:
    """The colour scale of a figure's error maps: the 99.5th percentile of all their absolute values (1 if 0)."""
    values = np.concatenate([np.abs(np.asarray(e, dtype=np.float64)).ravel() for e in errors])
    return float(np.percentile(values, ERROR_PERCENTILE)) or 1.0


def plot_map_row(maps: Mapping[str, np.ndarray], cmap: str = MAP_CMAP, vmax: float | None = 1.0, label: str = ""):
    """Draw 2D maps side by side, each titled by its key, with one shared colour scale; returns the figure.

    The row is at most :data:`PAGE_WIDTH_IN` wide, its text :data:`FONT_SIZE` points.
    """
    import matplotlib.pyplot as plt

    panel = min(1.6, (PAGE_WIDTH_IN - 0.9) / len(maps))
    fig, axes = plt.subplots(
        1, len(maps), figsize=(panel * len(maps) + 0.9, panel + 0.45), layout="constrained", squeeze=False
    )
    for ax, (title, image) in zip(axes[0], maps.items(), strict=True):
        shown = ax.imshow(image, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=FONT_SIZE)
        ax.set_axis_off()
    bar = fig.colorbar(shown, ax=list(axes[0]), shrink=0.9)
    bar.set_label(label, fontsize=FONT_SIZE)
    bar.ax.tick_params(labelsize=FONT_SIZE)
    return fig
