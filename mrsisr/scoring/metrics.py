"""Per-map image-quality metrics of upscaled metabolite maps against their ground truth.

Definitions, for a prediction ``p`` and a ground truth ``t`` of ``n`` pixels, both in [0, 1]:

- error map ``e = p - t``;
- ``mse = mean(e**2)`` and ``rmse = sqrt(mse)``;
- ``psnr = 10 log10(1 / mse)`` in dB, the data range being 1 (the maps are normalised to [0, 1]);
- ``psnr_range = 10 log10((max t - min t)**2 / mse)``, the data range taken from the truth map itself
  (scikit-image's convention when no range is given); equal to ``psnr`` when the truth spans [0, 1],
  undefined (NaN) for a constant truth map predicted exactly;
- ``psnr_authors = 20 log10(max(max p, max t)) - 10 log10(mse)``, the definition of the authors' public code
  (``MorEsm/SR-MRSI``, ``evaluation/metrics.py``): the peak is taken from the data, the larger of the two
  images' maxima;
- ``ssim``: structural similarity of scikit-image (7x7 uniform window, K1 = 0.01, K2 = 0.03),
  ``data_range = 1``;
- ``ssim_authors``: the same SSIM with ``data_range = max - min`` over both images (the authors' code);
  1 when both images are one and the same constant;
- ``lpips``: LPIPS v0.1 with the AlexNet backbone (:mod:`mrsisr.scoring.lpips`), the grey map repeated to
  three channels and scaled from [0, 1] to [-1, 1].

Predictions are clipped to [0, 1] before every metric except the two ``_authors`` ones: the ground-truth
maps are normalised to [0, 1] and so is every map the paper compares, while interpolation and networks may
overshoot a little. The ``_authors`` metrics score the prediction as given, as the authors' code does (it has
no clipping step); their ``mse`` is that of the unclipped prediction. With truth maps that span [0, 1] and a
clipped prediction they would equal ``psnr`` and ``ssim``; what separates them is the overshoot, which
raises the peak (and the SSIM range) more than the MSE. Ground truth outside [0, 1] is an error. A perfect
prediction has ``mse = 0`` and infinite PSNR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.metrics import structural_similarity

from mrsisr.scoring.lpips import lpips_batches

METRIC_NAMES: tuple[str, ...] = ("mse", "rmse", "psnr", "psnr_range", "psnr_authors", "ssim", "ssim_authors", "lpips")
RANGE_TOLERANCE = 1e-6
LPIPS_MIN_SIZE = 31  # the smallest side for which AlexNet's second max-pool has an output


def _as_batch(array: np.ndarray, name: str, grey: bool) -> tuple[np.ndarray, bool]:
    """Return ``array`` as a float32 batch and whether the input was a single image."""
    array = np.asarray(array, dtype=np.float32)
    single_ndim, batch_ndim = (2, 3) if grey else (3, 4)
    if array.ndim not in (single_ndim, batch_ndim) or array.size == 0:
        raise ValueError(f"{name} has shape {array.shape}: expected a non-empty image or batch of images")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} of shape {array.shape} contains NaN or infinite values")
    return (array[None], True) if array.ndim == single_ndim else (array, False)


def _check_unit_range(array: np.ndarray, name: str) -> None:
    low, high = float(array.min()), float(array.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name} of shape {array.shape} has values in [{low:.4g}, {high:.4g}], outside [0, 1]")


def _check_pair(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} has shape {first.shape} but {names[1]} has shape {second.shape}")


def lpips_distance(x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float | np.ndarray:
    """LPIPS v0.1 (alex) distance between images in [0, 1].

    Parameters
    ----------
    x, y : ndarray
        Grey images (H, W), RGB images (H, W, 3), or batches of either, (N, H, W) or (N, H, W, 3);
        both of the same shape, values in [0, 1]. A 3-D array whose last axis has length 3 is read as
        one RGB image. Grey images are repeated to three channels.
    batch_size : int
        Pairs per forward pass.

    Returns
    -------
    float or ndarray of shape (N,)
        A float for a single pair, one distance per pair for batches.
    """
    x, y = np.asarray(x), np.asarray(y)
    _check_pair(x, y, ("x", "y"))
    rgb = x.ndim == 4 or (x.ndim == 3 and x.shape[-1] == 3)
    (bx, single), (by, _) = _as_batch(x, "x", grey=not rgb), _as_batch(y, "y", grey=not rgb)
    for array, name in ((bx, "x"), (by, "y")):
        _check_unit_range(array, name)
    if min(bx.shape[1:3]) < LPIPS_MIN_SIZE:
        raise ValueError(
            f"LPIPS needs images of at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels, got shape {x.shape}"
        )
    if not rgb:
        bx, by = (np.repeat(b[..., None], 3, axis=-1) for b in (bx, by))
    distances = lpips_batches(bx * 2 - 1, by * 2 - 1, batch_size=batch_size)
    return float(distances[0]) if single else distances


def error_maps(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return the error maps ``clip(pred, 0, 1) - truth`` (float64), of the shape of the inputs."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    _check_pair(pred, truth, ("pred", "truth"))
    return np.clip(pred, 0.0, 1.0) - truth


def _psnr(mse: np.ndarray, data_range: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(np.square(data_range) / mse)


def _ssim_authors(pred: np.ndarray, truth: np.ndarray) -> float:
    """SSIM with the data range of both images together (the authors' convention); 1 for one shared constant."""
    data_range = max(pred.max(), truth.max()) - min(pred.min(), truth.min())
    return float(structural_similarity(pred, truth, data_range=data_range)) if data_range > 0 else 1.0


def per_map_metrics(pred: np.ndarray, truth: np.ndarray, with_lpips: bool = True) -> pd.DataFrame:
    """Compute every metric of the study for each (prediction, truth) pair of maps.

    Parameters
    ----------
    pred : ndarray, shape (H, W) or (N, H, W)
        Upscaled maps; clipped to [0, 1] for every metric but the ``_authors`` ones (see the module docstring).
    truth : ndarray, same shape
        Ground-truth maps in [0, 1].
    with_lpips : bool
        Compute LPIPS (a forward pass of AlexNet per map, by far the costliest metric); without it the
        ``lpips`` column is left out.

    Returns
    -------
    pandas.DataFrame
        One row per map, the columns of :data:`METRIC_NAMES`.

    Raises
    ------
    ValueError
        Different shapes, an empty set, NaN or infinite values, truth outside [0, 1].
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_pair(pred, truth, ("pred", "truth"))
    truth, _ = _as_batch(truth, "truth", grey=True)
    pred, _ = _as_batch(pred, "pred", grey=True)
    _check_unit_range(truth, "truth")
    raw64 = pred.astype(np.float64)
    pred = np.clip(pred, 0.0, 1.0)
    pred64, truth64 = pred.astype(np.float64), truth.astype(np.float64)
    raw_mse = np.mean(np.square(raw64 - truth64), axis=(1, 2))
    peak = np.maximum(raw64.max(axis=(1, 2)), truth64.max(axis=(1, 2)))
    mse = np.mean(np.square(error_maps(pred64, truth64)), axis=(1, 2))
    truth_range = truth64.max(axis=(1, 2)) - truth64.min(axis=(1, 2))
    ssim = [structural_similarity(p, t, data_range=1.0) for p, t in zip(pred64, truth64, strict=True)]
    table = pd.DataFrame(
        {
            "mse": mse,
            "rmse": np.sqrt(mse),
            "psnr": _psnr(mse, 1.0),
            "psnr_range": _psnr(mse, truth_range),
            "psnr_authors": _psnr(raw_mse, peak),
            "ssim": ssim,
            "ssim_authors": [_ssim_authors(p, t) for p, t in zip(raw64, truth64, strict=True)],
        }
    )
    return table.assign(lpips=lpips_distance(pred, truth)) if with_lpips else table
