"""Classical upscaling baselines, on the same low-resolution inputs as the network.

Every method follows the study's pixel-area alignment (:mod:`mrsisr.maps.kspace`): at factor 4 the
low-resolution pixel ``j`` covers the high-resolution pixels ``4j .. 4j+3``, so an output pixel ``i``
samples the input at coordinate ``(i + 0.5) / 4 - 0.5``.

- ``nearest``: each input pixel repeated into a 4x4 block (the paper's baseline).
- ``spline``: cubic B-spline interpolation, ``scipy.ndimage.zoom(order=3, grid_mode=True)`` with
  mirror-symmetric ("reflect") edges (the paper's "spline" baseline).
- ``bicubic``: Keys cubic convolution with ``a = -0.5`` (what PIL, OpenCV and most viewers call
  bicubic), edges replicated. Unlike the spline it interpolates the samples with a compact kernel.
- ``kspace``: zero-filled k-space (sinc) interpolation, :func:`mrsisr.maps.kspace.fourier_resample`,
  which is what an MRSI scanner displays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from mrsisr.maps.kspace import fourier_resample

METHODS: tuple[str, ...] = ("nearest", "spline", "bicubic", "kspace")
KEYS_A = -0.5


def keys_kernel(distance: np.ndarray, a: float = KEYS_A) -> np.ndarray:
    """Keys (1981) cubic convolution kernel evaluated at ``distance`` (in input pixels)."""
    t = np.abs(distance)
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def bicubic_matrix(n_in: int, factor: int) -> np.ndarray:
    """Return the (n_in * factor, n_in) matrix of 1-D Keys interpolation, pixel-area aligned.

    Samples beyond the edge take the value of the edge pixel (replicated border), so every row sums to 1.
    """
    n_out = n_in * factor
    coords = (np.arange(n_out) + 0.5) / factor - 0.5
    base = np.floor(coords).astype(int)
    matrix = np.zeros((n_out, n_in))
    for offset in range(-1, 3):
        taps = base + offset
        weights = keys_kernel(coords - taps)
        np.add.at(matrix, (np.arange(n_out), np.clip(taps, 0, n_in - 1)), weights)
    return matrix


def _check_lowres(lr: np.ndarray) -> np.ndarray:
    lr = np.asarray(lr, dtype=np.float32)
    if lr.ndim not in (2, 3) or lr.size == 0:
        raise ValueError(f"low-resolution maps must have shape (h, w) or (N, h, w), got {lr.shape}")
    if not np.all(np.isfinite(lr)):
        raise ValueError(f"low-resolution maps of shape {lr.shape} contain NaN or infinite values")
    return lr


def interpolate(lr: np.ndarray, method: str, factor: int = 4) -> np.ndarray:
    """Upscale low-resolution maps by an integer ``factor`` with a classical method.

    Parameters
    ----------
    lr : ndarray, shape (h, w) or (N, h, w)
        Low-resolution maps.
    method : {"nearest", "spline", "bicubic", "kspace"}
        See the module docstring.
    factor : int
        Integer upscaling factor (4 in the study: 32x32 -> 128x128).

    Returns
    -------
    ndarray, shape (factor*h, factor*w) or (N, factor*h, factor*w), float32
        Not clipped: spline, bicubic and k-space interpolation may overshoot [0, 1].
    """
    lr = _check_lowres(lr)
    if not isinstance(factor, int | np.integer) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    batch = lr if lr.ndim == 3 else lr[None]
    h, w = batch.shape[1:]
    if method == "nearest":
        out = np.repeat(np.repeat(batch, factor, axis=1), factor, axis=2)
    elif method == "spline":
        out = np.stack([ndimage.zoom(image, factor, order=3, mode="reflect", grid_mode=True) for image in batch])
    elif method == "bicubic":
        rows, cols = bicubic_matrix(h, factor).astype(np.float32), bicubic_matrix(w, factor).astype(np.float32)
        out = rows @ (batch.reshape(-1, w) @ cols.T).reshape(len(batch), h, factor * w)
    elif method == "kspace":
        out = fourier_resample(batch, (factor * h, factor * w))
    else:
        raise ValueError(f"unknown upscaling method {method!r}; valid: {', '.join(METHODS)}")
    out = np.asarray(out, dtype=np.float32)
    return out if lr.ndim == 3 else out[0]


def interpolate_all(lr: np.ndarray, methods: Iterable[str], factor: int = 4) -> dict[str, np.ndarray]:
    """Upscale ``lr`` (N, h, w) with each classical method; returns method -> (N, factor*h, factor*w)."""
    return {method: interpolate(lr, method, factor) for method in methods}
