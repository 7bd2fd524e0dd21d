"""Per-subject anatomy figure: T1, FLAIR and the GM, WM, CSF fractions of one axial slice."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mrsisr.study.figures import FONT_SIZE, MAP_CMAP, PAGE_WIDTH_IN

PANELS = (("T1", "t1"), ("FLAIR", "flair"), ("GM", "gm"), ("WM", "wm"), ("CSF", "csf"))


def _display_range(image: np.ndarray) -> tuple[float, float]:
    """0 to the 99.5th percentile of the non-zero voxels, so outliers (vessels, fat) do not wash the slice out."""
    values = image[image > 0]
    return 0.0, float(np.percentile(values, 99.5)) if values.size else 1.0


def _in_plane_box(volume: np.ndarray, margin: int = 2) -> tuple[slice, slice]:
    """x and y extent of the non-zero voxels of ``volume`` (all slices), plus ``margin``: the panels' crop."""
    xs, ys = np.nonzero(np.asarray(volume).any(axis=2))
    if xs.size == 0:
        return slice(None), slice(None)
    return (
        slice(max(xs.min() - margin, 0), xs.max() + margin + 1),
        slice(max(ys.min() - margin, 0), ys.max() + margin + 1),
    )


def plot_subject_slice(arrays: Mapping[str, np.ndarray], k: int, title: str = ""):
    """Draw T1, FLAIR, GM, WM and CSF of axial slice ``k`` in one row, each with its colorbar.

    Parameters
    ----------
    arrays : mapping
        ``t1``, ``flair``, ``gm``, ``wm``, ``csf`` volumes (X, Y, Z), RAS+ (e.g. a subject's ``.npz``);
        ``labels`` (optional) outlines the tumour on the T1 and FLAIR.
    k : int
        Axial slice index.
    title : str
        Figure title (e.g. the subject and its tissue shares).

    Returns
    -------
    matplotlib.figure.Figure
        Page-width figure (:data:`~mrsisr.study.figures.PAGE_WIDTH_IN` wide, text of at least
        :data:`~mrsisr.study.figures.FONT_SIZE` pt), cropped to the head; the subject's right is on the image's
        right, anterior up. Tissue fractions in the study's map colour map.

    Raises
    ------
    ValueError
        If ``k`` is not a slice of the volumes or a panel's volume is missing.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    missing = [key for _, key in PANELS if key not in arrays]
    if missing:
        raise ValueError(f"plot_subject_slice needs the volumes {', '.join(missing)}")
    depth = arrays["t1"].shape[2]
    if not 0 <= k < depth:
        raise ValueError(f"slice {k} is outside the volume (0 to {depth - 1})")
    box = _in_plane_box(arrays["t1"])
    fig, axes = plt.subplots(1, len(PANELS), figsize=(PAGE_WIDTH_IN, 2.3), layout="constrained")
    for ax, (name, key) in zip(axes, PANELS, strict=True):
        image = np.asarray(arrays[key][box + (k,)], dtype=np.float32).T
        intensity = key in ("t1", "flair")
        vmin, vmax = _display_range(np.asarray(arrays[key])) if intensity else (0.0, 1.0)
        shown = ax.imshow(image, origin="lower", cmap="gray" if intensity else MAP_CMAP, vmin=vmin, vmax=vmax)
        if intensity and "labels" in arrays:
            ax.contour((arrays["labels"][box + (k,)] > 0).T, levels=[0.5], colors="tab:cyan", linewidths=0.8)
        ax.set_title(name, fontsize=FONT_SIZE + 1)
        ax.set_axis_off()
        bar = fig.colorbar(shown, ax=ax, shrink=0.7, pad=0.02)
        bar.set_label("signal (a.u.)" if intensity else "fraction", fontsize=FONT_SIZE)
        bar.ax.yaxis.set_major_locator(MaxNLocator(3))
        bar.ax.tick_params(labelsize=FONT_SIZE)
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig
