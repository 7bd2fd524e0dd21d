"""Training-time augmentation of ``(B, H, W)`` batches in numpy: the square's symmetries and a randomised guide.

Every function draws from the generator it is given and from nothing else, so a batch is a pure function of
that generator's seed: training seeds it from ``(seed, epoch, batch)`` and a resumed run sees exactly the
batches of an uninterrupted one.

The guide randomisation makes the network's use of the FLAIR guide robust to what a real FLAIR differs by from
the phantom's: contrast (gamma, scale), resolution (blur), registration (integer shift) and noise, and, with
guide dropout, to no guide at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class GuideRanges:
    """The ranges each guide perturbation is drawn from, uniformly and independently per sample.

    The shift is in pixels of the high-resolution grid (1 px is about 1.7 mm at the study's 1.72 mm pixels).
    """

    gamma: tuple[float, float] = (0.7, 1.5)
    scale: tuple[float, float] = (0.9, 1.1)
    blur_sigma_px: tuple[float, float] = (0.0, 1.5)
    max_shift_px: int = 1
    noise_sd: tuple[float, float] = (0.0, 0.05)


def augment_batch(
    lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Apply one random rot90 and one random left-right flip to every array of a batch.

    Parameters
    ----------
    lr, guide, hr : ndarray, shape (B, H, W)
        Low-resolution maps, guides (or None) and targets; each gets the same transform.
    rng : numpy.random.Generator
        Draws ``k`` in 0..3 quarter turns, then whether to flip.

    Returns
    -------
    tuple of ndarray
        The transformed ``(lr, guide, hr)``, C-contiguous (``guide`` stays None).
    """
    k, flip = int(rng.integers(4)), bool(rng.integers(2))

    def transform(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        a = np.rot90(a, k, axes=(1, 2))
        return np.ascontiguousarray(a[:, :, ::-1] if flip else a)

    return transform(lr), transform(guide), transform(hr)


def perturb_guides(guide: np.ndarray, rng: np.random.Generator, ranges: GuideRanges = GuideRanges()) -> np.ndarray:
    """Randomise each guide of a batch: gamma, intensity scale, Gaussian blur, integer shift, additive noise.

    Per sample, in this order: ``scale * clip(g, 0)**gamma``, a Gaussian blur of random sigma (none at 0),
    a shift by a random whole number of pixels along each axis (edges repeated), and Gaussian noise of a
    random standard deviation.

    Parameters
    ----------
    guide : ndarray, shape (B, H, W)
        Guides normalised to about [0, 1].
    rng : numpy.random.Generator
        The source of every draw.
    ranges : GuideRanges
        Where each perturbation's strength is drawn from.

    Returns
    -------
    ndarray, shape (B, H, W), float32
        The perturbed guides (a new array).
    """
    n = len(guide)
    gamma, scale = rng.uniform(*ranges.gamma, n), rng.uniform(*ranges.scale, n)
    sigma, noise_sd = rng.uniform(*ranges.blur_sigma_px, n), rng.uniform(*ranges.noise_sd, n)
    shifts = rng.integers(-ranges.max_shift_px, ranges.max_shift_px + 1, size=(n, 2))
    per_map = (n, 1, 1)
    out = scale.reshape(per_map) * np.clip(np.asarray(guide, np.float32), 0, None) ** gamma.reshape(per_map)
    out = out.astype(np.float32)
    for i in range(n):
        if sigma[i] > 0:
            out[i] = ndimage.gaussian_filter(out[i], sigma[i])
        out[i] = ndimage.shift(out[i], shifts[i], order=0, mode="nearest")
    return out + noise_sd.reshape(per_map).astype(np.float32) * rng.standard_normal(out.shape, np.float32)


def drop_guides(guide: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Replace each guide of a batch by zeros with ``probability`` (independently per sample).

    Parameters
    ----------
    guide : ndarray, shape (B, H, W)
        The guides.
    rng : numpy.random.Generator
        Draws one uniform number per sample; nothing is drawn when ``probability`` is 0.
    probability : float
        The chance that a sample loses its guide, in [0, 1].

    Returns
    -------
    ndarray, shape (B, H, W)
        ``guide`` itself when ``probability`` is 0, else a copy with the dropped guides zeroed.
    """
    if probability <= 0:
        return guide
    dropped = rng.random(len(guide)) < probability
    return np.where(dropped[:, None, None], np.zeros((), guide.dtype), guide)


def crop_patches(
    lr: np.ndarray, guide: np.ndarray | None, hr: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Cut one random ``size`` x ``size`` window from each low-resolution map and the matching windows of the rest.

    The window of ``guide`` and ``hr`` covers the same area: ``factor * size`` pixels from ``factor`` times the
    low-resolution corner, with ``factor = hr.shape[1] // lr.shape[1]``.

    Parameters
    ----------
    lr, guide, hr : ndarray, shape (B, h, w), (B, factor*h, factor*w) or None, (B, factor*h, factor*w)
        A batch of maps, their guides and targets.
    size : int
        Side of the low-resolution window, at most ``min(h, w)``.
    rng : numpy.random.Generator
        Draws each window's corner (rows, then columns), uniformly over the positions that fit.

    Returns
    -------
    tuple of ndarray
        ``(lr, guide, hr)`` windows, shapes ``(B, size, size)`` and ``(B, factor*size, factor*size)``.
    """
    n, height, width = lr.shape
    if not 0 < size <= min(height, width):
        raise ValueError(f"patch size {size} does not fit maps of {height}x{width} low-resolution pixels")
    factor = hr.shape[1] // height
    rows, cols = rng.integers(0, height - size + 1, n), rng.integers(0, width - size + 1, n)

    def cut(a: np.ndarray | None, scale: int) -> np.ndarray | None:
        if a is None:
            return None
        side = scale * size
        return np.stack(
            [
                a[i, scale * r : scale * r + side, scale * c : scale * c + side]
                for i, (r, c) in enumerate(zip(rows, cols, strict=True))
            ]
        )

    return cut(lr, 1), cut(guide, factor), cut(hr, factor)


def centre_weights(side: int, margin: int) -> np.ndarray:
    """Per-pixel loss weights of a ``side`` x ``side`` target: 0 within ``margin`` pixels of an edge, else 1 / (share
    of the centre), so that the weights average 1 and the loss keeps its scale."""
    if not 0 <= 2 * margin < side:
        raise ValueError(f"loss margin {margin} leaves no centre in a {side}x{side} patch")
    weights = np.zeros((side, side), np.float32)
    weights[margin : side - margin, margin : side - margin] = 1.0
    return weights / weights.mean()
