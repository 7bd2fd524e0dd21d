"""Fourier (k-space) resampling of square or rectangular maps.

MRSI forms its images from a small central patch of k-space. :func:`fourier_resample` keeps the
central frequencies when it shrinks a map (k-space truncation) and pads with zeros when it enlarges
one (zero-filled reconstruction, what scanners display).

Geometry convention, shared by every resampler of the study: pixel-area alignment. A map of ``n``
pixels spans the field of view ``[0, 1)`` and its pixel ``i`` sits at ``(i + 0.5) / n``. At a factor
of 4 the low-resolution pixel ``j`` therefore covers the high-resolution pixels ``4j .. 4j+3`` and is
centred at high-resolution coordinate ``4j + 1.5``, exactly as a 4x4 block mean. The output is scaled
so that the mean of the map (the concentration) is kept.
"""

from __future__ import annotations

import numpy as np


def _axis_phase(n_in: int, n_out: int) -> np.ndarray:
    """Phase ramp that moves the output grid onto pixel-area-aligned sample positions."""
    shift = 0.5 * n_in / n_out - 0.5  # offset of output pixel 0, in input pixels
    freqs = np.fft.fftfreq(n_in) * n_in  # signed integer frequencies
    return np.exp(2j * np.pi * freqs * shift / n_in)


def _resize_spectrum(spectrum: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Crop (n_out < n) or zero-pad (n_out > n) a centred spectrum along ``axis``."""
    n_in = spectrum.shape[axis]
    centred = np.fft.fftshift(spectrum, axes=axis)
    if n_out <= n_in:
        start = n_in // 2 - n_out // 2
        index = [slice(None)] * spectrum.ndim
        index[axis] = slice(start, start + n_out)
        resized = centred[tuple(index)]
    else:
        pad = [(0, 0)] * spectrum.ndim
        before = n_out // 2 - n_in // 2
        pad[axis] = (before, n_out - n_in - before)
        resized = np.pad(centred, pad)
    return np.fft.ifftshift(resized, axes=axis)


def fourier_resample(images: np.ndarray, size: int | tuple[int, int], window: str | None = None) -> np.ndarray:
    """Resample the last two axes of ``images`` to ``size`` in k-space.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
        Real maps. Leading axes are treated as a batch.
    size : int or (int, int)
        Output height and width.
    window : {None, "hamming"}
        Apodisation applied to the kept k-space (a separable Hamming window), which trades ringing
        for blur, as many MRSI reconstructions do.

    Returns
    -------
    ndarray, shape (..., size_h, size_w), float32
        The resampled maps, pixel-area aligned, with the mean of each map kept.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 2:
        raise ValueError(f"fourier_resample needs at least 2 dimensions, got shape {images.shape}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    in_h, in_w = images.shape[-2:]
    spectrum = np.fft.fft2(images, axes=(-2, -1))
    spectrum = spectrum * _axis_phase(in_h, out_h)[:, None] * _axis_phase(in_w, out_w)[None, :]
    spectrum = _resize_spectrum(spectrum, -2, out_h)
    spectrum = _resize_spectrum(spectrum, -1, out_w)
    if window == "hamming":
        kept_h, kept_w = min(in_h, out_h), min(in_w, out_w)
        win_h = np.fft.ifftshift(_padded_window(np.hamming(kept_h), out_h))
        win_w = np.fft.ifftshift(_padded_window(np.hamming(kept_w), out_w))
        spectrum = spectrum * win_h[:, None] * win_w[None, :]
    elif window is not None:
        raise ValueError(f"unknown k-space window {window!r}; valid: None, 'hamming'")
    result = np.fft.ifft2(spectrum, axes=(-2, -1)).real * (out_h * out_w) / (in_h * in_w)
    return result.astype(np.float32)


def _padded_window(window: np.ndarray, n_out: int) -> np.ndarray:
    """Centre a window of the kept frequencies inside an ``n_out`` long, fftshifted axis."""
    full = np.zeros(n_out)
    start = n_out // 2 - len(window) // 2
    full[start : start + len(window)] = window / window[len(window) // 2]  # 1 at k = 0: the mean is kept
    return full
