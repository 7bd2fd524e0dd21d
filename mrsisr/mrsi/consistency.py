"""Data consistency between an upscaled map and the map it came from.

The study makes its low-resolution maps by k-space truncation (:func:`mrsisr.maps.lowres.make_lowres`,
``kspace``, which is :func:`mrsisr.maps.kspace.fourier_resample`): the central frequencies of the fine map,
scaled so that concentrations are kept. An upscaled map ``hr`` is *consistent* with its input ``lr`` when
that same truncation gives ``lr`` back.

- :func:`data_consistency_error` measures how far it is: relative RMS, over the input's valid voxels,
  of ``make_lowres(hr) - lr``.
- :func:`enforce_data_consistency` makes it so, as the data-consistency step of Dong et al.: the central
  k-space of ``hr`` is replaced by the input's, the finer frequencies (the network's detail) are kept.

Replacing the centre is ``hr + P(lr - D(hr))`` with ``D`` the truncation and ``P`` the zero-filled
enlargement (:func:`mrsisr.maps.kspace.fourier_resample`) divided, frequency by frequency, by the gain of
``D(P(.))``: 1 everywhere except at the Nyquist frequencies of even-sized maps, where the real part of the
zero-filled spectrum keeps half. ``D`` of the result is ``lr`` to float32 rounding.
"""

from __future__ import annotations

import functools

import numpy as np

from mrsisr.maps.kspace import fourier_resample


@functools.lru_cache(maxsize=16)
def _round_trip_gain(lr_shape: tuple[int, int], hr_shape: tuple[int, int]) -> np.ndarray:
    """Gain of truncation after enlargement, per low-resolution frequency (a diagonal operator in k-space)."""
    impulse = np.zeros(lr_shape)
    impulse[0, 0] = 1.0
    response = fourier_resample(fourier_resample(impulse, hr_shape), lr_shape).astype(np.float64)
    return np.fft.fft2(response)


def enforce_data_consistency(hr: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """Replace the central k-space of ``hr`` by that of ``lr`` (Dong et al.'s data-consistency step).

    Parameters
    ----------
    hr : ndarray, shape (..., H, W)
        Upscaled maps, finite.
    lr : ndarray, shape (..., h, w)
        The maps they were upscaled from (finite; invalid voxels filled, e.g. with 0), ``h <= H``, ``w <= W``.

    Returns
    -------
    ndarray, shape (..., H, W), float64
        Maps whose k-space truncation to ``(h, w)`` (:func:`mrsisr.maps.kspace.fourier_resample`) is ``lr``;
        the frequencies beyond ``(h, w)`` are those of ``hr``.

    Raises
    ------
    ValueError
        If the leading axes differ, ``lr`` is larger than ``hr`` in-plane, or either holds non-finite values.
    """
    hr = np.asarray(hr, dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    lr_shape, hr_shape = lr.shape[-2:], hr.shape[-2:]
    if hr.shape[:-2] != lr.shape[:-2] or lr_shape[0] > hr_shape[0] or lr_shape[1] > hr_shape[1]:
        raise ValueError(f"cannot make maps of shape {hr.shape} consistent with maps of shape {lr.shape}")
    if not (np.all(np.isfinite(hr)) and np.all(np.isfinite(lr))):
        raise ValueError("data consistency needs finite maps: fill invalid voxels first")
    residual = lr - fourier_resample(hr, lr_shape).astype(np.float64)
    gain = _round_trip_gain(tuple(lr_shape), tuple(hr_shape))
    corrected = np.fft.ifft2(np.fft.fft2(residual, axes=(-2, -1)) / gain, axes=(-2, -1)).real
    return hr + fourier_resample(corrected, hr_shape).astype(np.float64)


def data_consistency_error(
    hr: np.ndarray, lr: np.ndarray, mask: np.ndarray | None = None, weights: np.ndarray | None = None
) -> float:
    """Relative RMS difference between ``hr`` taken back to ``lr``'s matrix (k-space truncation) and ``lr``.

    Parameters
    ----------
    hr : ndarray, shape (N, H, W)
        Upscaled maps, finite (fill invalid voxels first).
    lr : ndarray, shape (N, h, w)
        The input maps, finite.
    mask : ndarray of bool, shape (N, h, w), optional
        The voxels compared (default: all).
    weights : ndarray, shape (N,), optional
        A scale per map: maps normalised per slice are compared as ``weights[n] * map`` (the input's units)
        without forming values that could overflow.

    Returns
    -------
    float
        ``sqrt(sum w^2 (truncate(hr) - lr)^2 / sum w^2 lr^2)`` over ``mask``; 0 when ``lr`` is 0 there.
    """
    lr = np.asarray(lr, dtype=np.float64)
    back = fourier_resample(hr, lr.shape[-2:]).astype(np.float64)
    mask = np.ones(lr.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    weights = np.ones(lr.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    squared = weights[:, None, None] ** 2 * mask
    signal = float(np.sum(squared * lr**2))
    return float(np.sqrt(np.sum(squared * (back - lr) ** 2) / signal)) if signal > 0 else 0.0
