"""Low-resolution maps: how the 32x32 inputs are made from the 128x128 maps.

- ``kspace`` (default): keep the central 32x32 of the 128x128 k-space, as MRSI acquires it
  (:func:`mrsisr.maps.kspace.fourier_resample`, scaled so that concentrations are kept);
- ``hamming``: the same with a Hamming window on the kept k-space (less ringing, more blur);
- ``block``: 4x4 block means (an ideal box point-spread function).

All three follow the pixel-area geometry of CONTRIBUTING.md.

``noise`` adds white Gaussian noise to the low-resolution maps, with a standard deviation of ``noise``
times the maximum of each high-resolution map (1 for the study's maps, normalised to [0, 1]). The noise
goes into the input and not into the ground truth: an MRSI acquisition is noisy at its own, low
resolution, and a noisy truth would cap every method's PSNR at ``-20 log10(noise)`` dB, whereas the
paper's model reaches 29.57 dB.
"""

from __future__ import annotations

import numpy as np

from mrsisr.maps.kspace import fourier_resample

LOWRES_METHODS: tuple[str, ...] = ("kspace", "hamming", "block")


def make_lowres(
    hr: np.ndarray,
    lr_size: int = 32,
    method: str = "kspace",
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return the low-resolution version of maps ``hr`` (shape (..., H, W)) at ``lr_size``.

    Parameters
    ----------
    hr : ndarray, shape (..., H, W)
        High-resolution maps.
    lr_size : int
        Side of the low-resolution maps.
    method : {"kspace", "hamming", "block"}
        See the module docstring.
    noise : float
        Standard deviation of the added Gaussian noise, as a fraction of each map's maximum (0: none).
    rng : numpy.random.Generator, optional
        Draws the noise; required when ``noise > 0``.

    Returns
    -------
    ndarray, shape (..., lr_size, lr_size), float32

    Raises
    ------
    ValueError
        For an unknown ``method``, a map size that ``lr_size`` does not divide (block means), a negative
        ``noise``, or noise without ``rng``.
    """
    if not noise >= 0:
        raise ValueError(f"map_noise must be >= 0, got {noise}")
    if noise > 0 and rng is None:
        raise ValueError("map_noise > 0 needs a random generator (rng) to draw the noise")
    hr = np.asarray(hr, dtype=np.float32)
    lr = _resample(hr, lr_size, method)
    if noise == 0:
        return lr
    sd = noise * hr.max(axis=(-2, -1), keepdims=True).astype(np.float64)
    return (lr + sd * rng.standard_normal(lr.shape)).astype(np.float32)


def _resample(hr: np.ndarray, lr_size: int, method: str) -> np.ndarray:
    if method == "kspace":
        return fourier_resample(hr, lr_size)
    if method == "hamming":
        return fourier_resample(hr, lr_size, window="hamming")
    if method == "block":
        height, width = hr.shape[-2:]
        if height % lr_size or width % lr_size:
            raise ValueError(f"block means need map sizes divisible by {lr_size}, got {height}x{width}")
        fh, fw = height // lr_size, width // lr_size
        blocks = hr.reshape(*hr.shape[:-2], lr_size, fh, lr_size, fw)
        return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)
    raise ValueError(f"unknown lowres_method {method!r}; valid: {', '.join(LOWRES_METHODS)}")
