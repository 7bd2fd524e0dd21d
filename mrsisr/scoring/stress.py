"""Stress tests of a trained network at inference: the conditions the paper left as future work.

The paper names "testing the model on datasets with varying levels of noise, resolution, and disease
severity" as future work. Each factor below changes one thing about the test split and scores the network
and the cubic spline on the changed maps against the unchanged ground truth:

- **input noise**: Gaussian noise added to the 32 x 32 input, its SD a fraction of each map's maximum;
- **low-resolution simulation**: the input made by another method than the training maps' (zero-filled
  k-space truncation, Hamming-windowed truncation, 4 x 4 block means; :mod:`mrsisr.maps.lowres`);
- **guide shift** and **guide rotation**: the FLAIR guide misregistered by a translation (mm, along the
  image's columns) or a rotation about the slice centre (degrees); guided networks only;
- **upscaling factor**: 8x from a 16 x 16 input, the 4x network applied twice (16 -> 64 with the guide
  block-averaged to 64 x 64, then 64 -> 256 with the guide linearly upsampled to 256 x 256, then 2 x 2
  block means back to 128 x 128) against a direct 8x spline;
- **tumour grade**: the unchanged test maps grouped by the subject's grade;
- **tumour size**: the unchanged test maps grouped by their lesion's area in the map's slab (the synthesis'
  ``lesion_mm2``: every tumour label, i.e. necrotic or non-enhancing core, oedema and enhancing tumour):
  maps without lesion, then small and large lesions split at the median area of the maps with one.

Every factor's first level is the test split as it is, so each curve starts at Table 2's values.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from mrsisr.maps.lowres import LOWRES_METHODS, make_lowres
from mrsisr.network.model import is_guided, predict
from mrsisr.scoring.baselines import interpolate
from mrsisr.scoring.metrics import per_map_metrics
from mrsisr.scoring.tables import METRIC_FORMATS

NOISE_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
SHIFTS_MM: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
ROTATIONS_DEG: tuple[float, ...] = (0.0, 2.0, 5.0)
SCORED = ("psnr", "ssim")
COLUMNS = ("factor", "level", "value", "method", "map", *SCORED)
#: The synthesis' per-map lesion area (:mod:`mrsisr.stages.synthesis`), the tumour-size factor's measure.
LESION_COLUMN = "lesion_mm2"
Scores = dict[str, pd.DataFrame]  # method -> per-map scores (``map, psnr, ssim``)


def _scores(pred: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    table = per_map_metrics(pred, truth, with_lpips=False)[list(SCORED)]
    return table.assign(map=np.arange(len(truth)))


def _both(model: keras.Model, lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray) -> Scores:
    """Scores of the network and the spline for one (changed) input ``lr`` and guide."""
    return {"model": _scores(predict(model, lr, guide), hr), "spline": _scores(interpolate(lr, "spline"), hr)}


def _level(scores: Scores, factor: str, level: str, value: float, rows: np.ndarray | None = None) -> list[pd.DataFrame]:
    """Both methods' scores labelled with a factor's level (only the maps ``rows`` when given)."""
    return [
        (table if rows is None else table[rows]).assign(factor=factor, level=level, value=value, method=method)
        for method, table in scores.items()
    ]


def _noise_tables(model, lr, guide, hr, unchanged: Scores, lowres_method: str, seed: int) -> list[pd.DataFrame]:
    factor = "input noise (SD, share of each map's maximum)"
    tables = []
    for level in NOISE_LEVELS:
        scores = unchanged
        if level:
            rng = np.random.default_rng(seed)
            scores = _both(model, make_lowres(hr, lr.shape[-1], lowres_method, noise=level, rng=rng), guide, hr)
        tables += _level(scores, factor, f"{level:.0%}", level)
    return tables


def _lowres_tables(model, lr, guide, hr, unchanged: Scores, lowres_method: str) -> list[pd.DataFrame]:
    order = [lowres_method, *(m for m in LOWRES_METHODS if m != lowres_method)]
    tables = _level(unchanged, "low-resolution simulation", f"{lowres_method} (as trained)", 0.0)
    for index, method in enumerate(order[1:], start=1):
        changed = _both(model, make_lowres(hr, lr.shape[-1], method), guide, hr)
        tables += _level(changed, "low-resolution simulation", method, float(index))
    return tables


def _guide_tables(
    model, lr, guide, hr, unchanged: Scores, factor: str, levels: tuple[float, ...], unit: str, move: Callable
) -> list[pd.DataFrame]:
    """The network with its guide moved by each level; the spline ignores the guide (its unchanged scores)."""
    tables = []
    for level in levels:
        moved = unchanged["model"]
        if level:
            moved = _scores(predict(model, lr, move(guide, level).astype(np.float32)), hr)
        tables += _level({"model": moved, "spline": unchanged["spline"]}, factor, f"{level:g} {unit}", level)
    return tables


def shift_guide(guide: np.ndarray, shift_mm: float, pixel_mm: float) -> np.ndarray:
    """Translate guides ``(N, H, W)`` by ``shift_mm`` along their columns (linear interpolation, edges repeated)."""
    return ndimage.shift(guide, (0, 0, shift_mm / pixel_mm), order=1, mode="nearest")


def rotate_guide(guide: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate guides ``(N, H, W)`` by ``degrees`` about their centres (linear interpolation, edges repeated)."""
    return ndimage.rotate(guide, degrees, axes=(1, 2), reshape=False, order=1, mode="nearest")


def upscale_eightfold(model: keras.Model, lr16: np.ndarray, guide: np.ndarray | None) -> np.ndarray:
    """Upscale ``(N, h, w)`` maps 8x with a 4x network applied twice (see the module docstring).

    ``guide`` is at the 8x size ``(N, 8h, 8w)`` (None for an unguided network).
    """
    small = big = None
    if guide is not None:
        n, height, width = guide.shape
        small = guide.reshape(n, height // 2, 2, width // 2, 2).mean(axis=(2, 4))
        big = ndimage.zoom(guide, (1, 2, 2), order=1, grid_mode=True, mode="nearest").astype(np.float32)
    middle = np.clip(predict(model, lr16, small), 0.0, None)
    upscaled = predict(model, middle, big)
    n, height, width = upscaled.shape
    return upscaled.reshape(n, height // 2, 2, width // 2, 2).mean(axis=(2, 4))


def _factor_tables(model, guide, hr, unchanged: Scores) -> list[pd.DataFrame]:
    lr16 = make_lowres(hr, hr.shape[-1] // 8, "kspace")
    eightfold = {
        "model": _scores(upscale_eightfold(model, lr16, guide), hr),
        "spline": _scores(interpolate(lr16, "spline", factor=8), hr),
    }
    return _level(unchanged, "upscaling factor", "4x (32 -> 128)", 4.0) + _level(
        eightfold, "upscaling factor", "8x (16 -> 128)", 8.0
    )


def lesion_size_groups(areas: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The tumour-size groups of maps by lesion area: none, then small and large split at the median.

    The median is that of the maps with a lesion (area > 0); a map at the median counts as small. Groups
    without a map are left out.

    Parameters
    ----------
    areas : ndarray
        Each map's lesion area, mm^2 (the synthesis' ``lesion_mm2``).

    Returns
    -------
    list of (str, ndarray of bool)
        Each group's label (naming the median) and which maps belong to it, in increasing size.
    """
    areas = np.asarray(areas, dtype=float)
    lesion = areas > 0
    median = float(np.median(areas[lesion])) if lesion.any() else 0.0
    groups = [
        ("no lesion", ~lesion),
        (f"small (up to {median:.0f} mm²)", lesion & (areas <= median)),
        (f"large (over {median:.0f} mm²)", lesion & (areas > median)),
    ]
    return [(label, rows) for label, rows in groups if rows.any()]


def stress_tests(
    model: keras.Model,
    lr: np.ndarray,
    guide: np.ndarray,
    hr: np.ndarray,
    meta: pd.DataFrame,
    pixel_mm: float,
    lowres_method: str,
    seed: int,
) -> pd.DataFrame:
    """Score ``model`` and the cubic spline under every factor of the module docstring.

    Parameters
    ----------
    model : keras.Model
        A trained 4x network (guided or not; guide factors are skipped for an unguided one).
    lr, guide, hr : ndarray
        The test split: inputs (N, 32, 32), guides and ground truths (N, 128, 128).
    meta : DataFrame
        The test split's metadata: ``grade`` and ``lesion_mm2`` per map.
    pixel_mm : float
        Pixel size of the 128 x 128 maps (the synthesis' field of view / 128).
    lowres_method : str
        How the training inputs were made (the synthesis' ``lowres_method``).
    seed : int
        Seeds the input noise (the same draw at every level, scaled).

    Returns
    -------
    pandas.DataFrame
        One row per (factor, level, method, test map): ``factor, level, value, method, map, psnr, ssim``;
        ``value`` orders the levels of a factor on a plot's x axis.

    Raises
    ------
    ValueError
        When ``meta`` lacks the ``grade`` or ``lesion_mm2`` column (a synthesis output older than the tumour size).
    """
    missing = [name for name in ("grade", LESION_COLUMN) if name not in meta.columns]
    if missing:
        raise ValueError(f"the test split's metadata lacks {', '.join(missing)}: run the synthesis stage again")
    guided = is_guided(model)
    guide = np.asarray(guide, dtype=np.float32) if guided else None
    lr, hr = np.asarray(lr, dtype=np.float32), np.asarray(hr, dtype=np.float32)
    unchanged = _both(model, lr, guide, hr)  # every factor's first level: the test split as it is
    tables = _noise_tables(model, lr, guide, hr, unchanged, lowres_method, seed)
    tables += _lowres_tables(model, lr, guide, hr, unchanged, lowres_method)
    if guided:
        shift = lambda g, mm: shift_guide(g, mm, pixel_mm)  # noqa: E731
        tables += _guide_tables(model, lr, guide, hr, unchanged, "guide shift", SHIFTS_MM, "mm", shift)
        tables += _guide_tables(
            model, lr, guide, hr, unchanged, "guide rotation", ROTATIONS_DEG, "degrees", rotate_guide
        )
    tables += _factor_tables(model, guide, hr, unchanged)
    for value, grade in enumerate(sorted(meta["grade"].unique())):
        tables += _level(unchanged, "tumour grade", grade, float(value), (meta["grade"] == grade).to_numpy())
    for value, (label, rows) in enumerate(lesion_size_groups(meta[LESION_COLUMN].to_numpy())):
        tables += _level(unchanged, "tumour size (lesion area)", label, float(value), rows)
    return pd.concat(tables, ignore_index=True)[list(COLUMNS)]


def stress_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of PSNR and SSIM per factor, level and method, and the model's PSNR gain over spline."""
    summary = (
        table.groupby(["factor", "value", "level", "method"], sort=False)[list(SCORED)]
        .agg(["mean", "std"])
        .reset_index()
    )
    summary.columns = ["_".join(c for c in column if c) for column in summary.columns]
    wide = summary.pivot_table(index=["factor", "value", "level"], columns="method", values="psnr_mean", sort=False)
    gains = (wide["model"] - wide["spline"]).rename("psnr_gain_db").reset_index()
    return summary.merge(gains, on=["factor", "value", "level"])


def stress_display(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`stress_summary` for reading: plain headers, rounded values, indexed by factor, level and method."""
    psnr, ssim = METRIC_FORMATS["psnr"], METRIC_FORMATS["ssim"]
    shown = pd.DataFrame(
        {
            "Factor": summary["factor"],
            "Level": summary["level"],
            "Method": summary["method"].replace({"model": "network", "spline": "cubic spline"}),
            psnr.header: summary["psnr_mean"].map(psnr.value),
            "PSNR SD": summary["psnr_std"].map(psnr.value),
            ssim.header: summary["ssim_mean"].map(ssim.value),
            "SSIM SD": summary["ssim_std"].map(ssim.value),
            "Network minus spline, PSNR (dB)": summary["psnr_gain_db"].map(psnr.value),
        }
    ).set_index(["Factor", "Level", "Method"])
    shown.attrs["caption"] = "Mean and SD over the test maps per factor, level and method."
    return shown
