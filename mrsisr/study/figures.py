"""Figures shared by the notebooks: rows of maps with colour bars."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def plot_map_row(maps: Mapping[str, np.ndarray], cmap: str = "inferno", vmax: float | None = 1.0, label: str = ""):
    """Draw 2D maps side by side, each titled by its key, with a shared colour scale; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(3 * len(maps), 3.3), layout="constrained", squeeze=False)
    for ax, (title, image) in zip(axes[0], maps.items(), strict=True):
        shown = ax.imshow(image, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    fig.colorbar(shown, ax=list(axes[0]), shrink=0.8, label=label)
    return fig
