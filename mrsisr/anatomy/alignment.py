"""How far apart two images of one subject lie: the in-plane shift that best aligns their edges.

Used to check how well a real FLAIR is registered to the T1 the maps' tissue comes from (the phantom FLAIR's
misregistration, ``flair_shift_mm``, should be of that order). Edges, not intensities, are compared, because
the two contrasts differ: each axial slice is reduced to its gradient magnitude (Sobel), the moving image's is
shifted by sub-voxel amounts (linear interpolation), and the shift with the highest Pearson correlation with
the fixed image's, averaged over the slices, wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class EdgeAlignment:
    """The best in-plane shift of ``moving`` onto ``fixed`` and the edge correlations before and after it.

    ``shift_vox`` is along the volume's first two axes, in voxels; ``correlation_at_zero`` and
    ``correlation`` are the mean edge correlations over the slices without and with that shift.
    """

    shift_vox: tuple[float, float]
    correlation_at_zero: float
    correlation: float


def edge_map(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a 2-D image (Sobel along both axes)."""
    image = np.asarray(image, dtype=np.float64)
    return np.hypot(ndimage.sobel(image, axis=0), ndimage.sobel(image, axis=1))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else 0.0


def edge_alignment(
    fixed: np.ndarray, moving: np.ndarray, slices: list[int], max_shift_vox: float = 2.0, step_vox: float = 0.25
) -> EdgeAlignment:
    """Find the in-plane shift of ``moving`` that best aligns its edges with those of ``fixed``.

    Parameters
    ----------
    fixed, moving : ndarray, shape (X, Y, Z)
        Two volumes on the same voxel grid (e.g. a T1 and a FLAIR of one case), intensities in any units.
    slices : list of int
        The axial slices (last axis) to compare.
    max_shift_vox, step_vox : float
        The shifts tried along each of the first two axes: ``-max_shift_vox`` to ``+max_shift_vox`` in steps
        of ``step_vox`` voxels.

    Returns
    -------
    EdgeAlignment
        The best shift, and the mean edge correlation at no shift and at the best one.

    Raises
    ------
    ValueError
        When the volumes' shapes differ, no slice is given, or a slice is outside the volumes.
    """
    fixed, moving = np.asarray(fixed), np.asarray(moving)
    if fixed.shape != moving.shape or fixed.ndim != 3:
        raise ValueError(f"edge_alignment needs two volumes of one 3-D shape, got {fixed.shape} and {moving.shape}")
    if not slices or min(slices) < 0 or max(slices) >= fixed.shape[2]:
        raise ValueError(f"edge_alignment: slices {slices} are not within 0..{fixed.shape[2] - 1}")
    fixed_edges = [edge_map(fixed[:, :, k]) for k in slices]
    moving_edges = [edge_map(moving[:, :, k]) for k in slices]
    steps = np.arange(-max_shift_vox, max_shift_vox + step_vox / 2, step_vox)
    scores = {}
    for dx in steps:
        for dy in steps:
            shifted = (ndimage.shift(m, (dx, dy), order=1, mode="nearest") for m in moving_edges)
            scores[(float(dx), float(dy))] = np.mean(
                [_correlation(f, m) for f, m in zip(fixed_edges, shifted, strict=True)]
            )
    best = max(scores, key=scores.get)
    at_zero = np.mean([_correlation(f, m) for f, m in zip(fixed_edges, moving_edges, strict=True)])
    return EdgeAlignment(best, float(at_zero), float(scores[best]))
