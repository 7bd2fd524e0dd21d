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
- **tumour grade**: the unchanged test maps grouped by the subject's grade.

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


def _scores(factor: str, level: str, value: float, method: str, pred: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    table = per_map_metrics(pred, truth, with_lpips=False)[list(SCORED)]
    return table.assign(factor=factor, level=level, value=value, method=method, map=np.arange(len(truth)))


def _both(
    factor: str, level: str, value: float, model: keras.Model, lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray
) -> list[pd.DataFrame]:
    """Scores of the network and the spline for one changed input ``lr`` (and guide)."""
    return [
        _scores(factor, level, value, "model", predict(model, lr, guide), hr),
        _scores(factor, level, value, "spline", interpolate(lr, "spline"), hr),
    ]


def _noise_tables(model, lr, guide, hr, lowres_method: str, seed: int) -> list[pd.DataFrame]:
    tables = []
    for level in NOISE_LEVELS:
        rng = np.random.default_rng(seed)
        noisy = lr if level == 0 else make_lowres(hr, lr.shape[-1], lowres_method, noise=level, rng=rng)
        tables += _both("input noise (SD, share of each map's maximum)", f"{level:.0%}", level, model, noisy, guide, hr)
    return tables


def _lowres_tables(model, lr, guide, hr, lowres_method: str) -> list[pd.DataFrame]:
    order = [lowres_method, *(m for m in LOWRES_METHODS if m != lowres_method)]
    tables = []
    for index, method in enumerate(order):
        changed = lr if method == lowres_method else make_lowres(hr, lr.shape[-1], method)
        label = f"{method} (as trained)" if method == lowres_method else method
        tables += _both("low-resolution simulation", label, float(index), model, changed, guide, hr)
    return tables


def _guide_tables(
    model, lr, guide, hr, spline: pd.DataFrame, factor: str, levels: tuple[float, ...], unit: str, move: Callable
) -> list[pd.DataFrame]:
    """The network with its guide moved by each level; the spline (which ignores the guide) as ``spline``."""
    tables = []
    for level in levels:
        changed = guide if level == 0 else move(guide, level).astype(np.float32)
        label = f"{level:g} {unit}"
        tables += [
            _scores(factor, label, level, "model", predict(model, lr, changed), hr),
            spline.assign(factor=factor, level=label, value=level),
        ]
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


def _factor_tables(model, lr, guide, hr) -> list[pd.DataFrame]:
    lr16 = make_lowres(hr, hr.shape[-1] // 8, "kspace")
    return [
        *_both("upscaling factor", "4x (32 -> 128)", 4.0, model, lr, guide, hr),
        _scores("upscaling factor", "8x (16 -> 128)", 8.0, "model", upscale_eightfold(model, lr16, guide), hr),
        _scores("upscaling factor", "8x (16 -> 128)", 8.0, "spline", interpolate(lr16, "spline", factor=8), hr),
    ]


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
        The test split's metadata (a ``grade`` column per map).
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
    """
    guided = is_guided(model)
    guide = np.asarray(guide, dtype=np.float32) if guided else None
    lr, hr = np.asarray(lr, dtype=np.float32), np.asarray(hr, dtype=np.float32)
    tables = _noise_tables(model, lr, guide, hr, lowres_method, seed)
    tables += _lowres_tables(model, lr, guide, hr, lowres_method)
    if guided:
        spline = tables[1]  # the spline on the unchanged inputs (first noise level)
        shift = lambda g, mm: shift_guide(g, mm, pixel_mm)  # noqa: E731
        tables += _guide_tables(model, lr, guide, hr, spline, "guide shift", SHIFTS_MM, "mm", shift)
        tables += _guide_tables(model, lr, guide, hr, spline, "guide rotation", ROTATIONS_DEG, "degrees", rotate_guide)
    tables += _factor_tables(model, lr, guide, hr)
    base = tables[:2]  # the network and the spline on the unchanged test split (first noise level)
    for value, grade in enumerate(sorted(meta["grade"].unique())):
        chosen = (meta["grade"] == grade).to_numpy()
        tables += [t[chosen].assign(factor="tumour grade", level=grade, value=float(value)) for t in base]
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
