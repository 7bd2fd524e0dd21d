"""Axial slice selection and extraction of MRSI-like slabs onto the 128x128 map grid.

An MRSI slice is a slab: ``slice_thickness_mm`` thick (10 mm in the paper) and ``fov_mm`` wide
(220 mm) on a ``map_size`` matrix (128, i.e. 1.718 mm). :func:`extract_slab` averages a volume over
the slab's thickness (the partial volume the slice sees) and resamples it in-plane onto that grid,
centred on the brain. A ``slice_thickness_mm`` of 0 (anything below 1.5 anatomy voxels) takes one
anatomy slice, resized onto the grid without averaging: the paper's "selected a few axial slices ...
and resized them to a 128 x 128 pixel resolution". ``fov_mm`` is the in-plane extent resized onto the
grid (220 mm in the paper's text; 240 mm is the whole BraTS slice). Maps are returned in display
orientation: rows run from anterior (top) to posterior, columns along the volume's x axis (RAS+:
towards the subject's right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class MapGrid:
    """The in-plane grid of the maps and the slab thickness (0: one anatomy slice, no averaging)."""

    size: int = 128
    fov_mm: float = 220.0
    thickness_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.size < 1 or not self.fov_mm > 0 or not self.thickness_mm >= 0:
            raise ValueError(
                f"map grid needs size >= 1, fov_mm > 0 and slice_thickness_mm >= 0, "
                f"got {self.size}, {self.fov_mm} and {self.thickness_mm}"
            )

    @property
    def pixel_mm(self) -> float:
        """In-plane pixel size in mm."""
        return self.fov_mm / self.size


def slab_voxels(thickness_mm: float, voxel_mm: float) -> int:
    """Number of volume slices (at least 1) that make up a slab of ``thickness_mm`` (0: one slice)."""
    return max(1, int(round(thickness_mm / voxel_mm)))


def slab_range(k: int, n_slices: int, depth: int) -> slice:
    """The volume slices of the slab centred on slice ``k`` (clipped to the volume)."""
    start = max(0, k - depth // 2)
    return slice(start, min(n_slices, start + depth))


def candidate_slices(labels: np.ndarray, flair: np.ndarray, brain: np.ndarray, depth: int) -> np.ndarray:
    """Axial slices whose slab holds tumour with a FLAIR signal above the slab's mean (the paper's rule).

    Parameters
    ----------
    labels, flair, brain : ndarray, shape (X, Y, Z)
        Tumour labels, FLAIR and brain mask of one subject.
    depth : int
        Slab thickness in volume slices.

    Returns
    -------
    ndarray of int
        Slice indices ``k`` in increasing order.
    """
    keep = []
    for k in range(labels.shape[2]):
        slab = slab_range(k, labels.shape[2], depth)
        tumour = labels[:, :, slab] > 0
        inside = brain[:, :, slab]
        if tumour.sum() < 4 or not inside.any():
            continue
        if flair[:, :, slab][tumour].mean() > flair[:, :, slab][inside].mean():
            keep.append(k)
    return np.asarray(keep, dtype=int)


def choose_slices(candidates: np.ndarray, n_min: int, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """Pick between ``n_min`` and ``n_max`` slices, spread evenly over the candidates.

    Fewer are returned when there are fewer candidates; the count is drawn uniformly.
    """
    if n_min < 1 or n_max < n_min:
        raise ValueError(f"need 1 <= slices_min <= slices_max, got {n_min} and {n_max}")
    if len(candidates) == 0:
        return candidates
    count = min(len(candidates), int(rng.integers(n_min, n_max + 1)))
    positions = np.round(np.linspace(0, len(candidates) - 1, count + 2)[1:-1]).astype(int)
    return candidates[np.unique(positions)]


def brain_centre(brain: np.ndarray) -> tuple[float, float]:
    """In-plane centre (x, y voxel coordinates) of the brain's bounding box."""
    xs, ys = np.nonzero(brain.any(axis=2))
    if len(xs) == 0:
        raise ValueError("the brain mask is empty")
    return 0.5 * (xs.min() + xs.max()), 0.5 * (ys.min() + ys.max())


def extract_slab(
    volume: np.ndarray, k: int, voxel_mm: np.ndarray, centre: tuple[float, float], grid: MapGrid
) -> np.ndarray:
    """Average ``volume`` over the slab centred on slice ``k`` and resample it onto the map grid.

    Parameters
    ----------
    volume : ndarray, shape (X, Y, Z)
    k : int
        Centre slice of the slab.
    voxel_mm : array of 3 floats
        Voxel size of ``volume``.
    centre : (float, float)
        In-plane voxel coordinates the field of view is centred on.
    grid : MapGrid

    Returns
    -------
    ndarray, shape (size, size), float32
        Rows anterior (top) to posterior, columns along x (left to right of the array).
    """
    depth = slab_voxels(grid.thickness_mm, float(voxel_mm[2]))
    slab = volume[:, :, slab_range(k, volume.shape[2], depth)].astype(np.float64).mean(axis=2)
    offsets = (np.arange(grid.size) + 0.5) * grid.pixel_mm - grid.fov_mm / 2
    x = centre[0] + offsets / float(voxel_mm[0])
    y = centre[1] - offsets / float(voxel_mm[1])  # row 0 is the most anterior
    rows_y, cols_x = np.meshgrid(y, x, indexing="ij")
    resampled = ndimage.map_coordinates(slab, [cols_x, rows_y], order=1, mode="constant", cval=0.0)
    return resampled.astype(np.float32)


def lesion_area_mm2(
    labels: np.ndarray, k: int, voxel_mm: np.ndarray, centre: tuple[float, float], grid: MapGrid
) -> float:
    """Area of the lesion in the map of the slab centred on slice ``k``, in mm^2.

    The lesion is every tumour label (> 0: necrotic or non-enhancing core, oedema, enhancing tumour). Its mask
    is brought onto the map grid as the maps are (:func:`extract_slab`), so a pixel counts by the share of it
    that the lesion covers, averaged over the slab; the sum times the pixel's area is the area.
    """
    share = extract_slab((labels > 0).astype(np.float32), k, voxel_mm, centre, grid)
    return float(share.astype(np.float64).sum()) * grid.pixel_mm**2
