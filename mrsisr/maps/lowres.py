"""Low-resolution maps: how the 32x32 inputs are made from the 128x128 maps.

- ``kspace`` (default): keep the central 32x32 of the 128x128 k-space, as MRSI acquires it
  (:func:`mrsisr.maps.kspace.fourier_resample`, scaled so that concentrations are kept);
- ``hamming``: the same with a Hamming window on the kept k-space (less ringing, more blur);
- ``block``: 4x4 block means (an ideal box point-spread function).

All three follow the pixel-area geometry of CONTRIBUTING.md.
"""

from __future__ import annotations

import numpy as np

from mrsisr.maps.kspace import fourier_resample

LOWRES_METHODS: tuple[str, ...] = ("kspace", "hamming", "block")


def make_lowres(hr: np.ndarray, lr_size: int = 32, method: str = "kspace") -> np.ndarray:
    """Return the low-resolution version of maps ``hr`` (shape (..., H, W)) at ``lr_size``.

    Raises
    ------
    ValueError
        For an unknown ``method`` or a map size that ``lr_size`` does not divide (block means).
    """
    hr = np.asarray(hr, dtype=np.float32)
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
