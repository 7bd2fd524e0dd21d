"""Safe NIfTI reading: every failure names the file and the problem."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


def load_nifti_volume(path: str | os.PathLike, allow_zero: bool = False) -> nib.Nifti1Image:
    """Read a 3D NIfTI image (a 4D image with one volume is accepted), fully, and check it.

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file.
    allow_zero : bool
        Accept an image whose voxels are all zero (a tumour mask of a healthy subject).

    Returns
    -------
    nibabel.Nifti1Image
        The image with its data loaded as float32, reoriented to RAS+ (closest canonical axes).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is corrupt or truncated, is not 3D, has non-finite voxels, or is all zero.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NIfTI file")
    try:
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float32)
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, ValueError) as error:
        raise ValueError(f"{path}: not a readable NIfTI file (corrupt or truncated?): {error}") from error
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got {data.ndim} dimensions (shape {data.shape})")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: contains NaN or infinite voxels")
    if not allow_zero and not data.any():
        raise ValueError(f"{path}: every voxel is zero (an empty image)")
    return nib.as_closest_canonical(nib.Nifti1Image(data, image.affine))


def same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, tol_mm: float = 1e-2) -> bool:
    """True when two images have the same shape and (within ``tol_mm``) the same voxel-to-mm affine."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=tol_mm)


def resample_isotropic(
    image: nib.Nifti1Image, voxel_mm: float, order: int, data: np.ndarray | None = None
) -> np.ndarray:
    """Resample a RAS+ image to ``voxel_mm`` isotropic voxels along its own axes.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        RAS+ image (see :func:`load_nifti_volume`).
    voxel_mm : float
        Target voxel size in mm.
    order : int
        Spline order: 1 for intensities, 0 for label maps.

    Returns
    -------
    numpy.ndarray of float32
    """
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    data = np.asarray(image.dataobj if data is None else data, dtype=np.float32)
    if np.allclose(zooms, voxel_mm):
        return data
    return ndimage.zoom(data, zooms / voxel_mm, order=order, mode="nearest", grid_mode=True).astype(np.float32)


def resampled_affine(image: nib.Nifti1Image, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel-to-mm (RAS+) affine of ``image`` resampled by :func:`resample_isotropic` onto ``shape``.

    ``resample_isotropic`` maps the outer edges of the grid onto each other (``grid_mode=True``), so
    output voxel ``j`` sits at input voxel ``(j + 0.5) * n_in / n_out - 0.5`` along each axis.

    Returns
    -------
    numpy.ndarray of float64, shape (4, 4)
    """
    step = np.asarray(image.shape[:3], dtype=np.float64) / np.asarray(shape[:3], dtype=np.float64)
    to_input = np.eye(4)
    to_input[:3, :3] = np.diag(step)
    to_input[:3, 3] = 0.5 * step - 0.5
    return (np.asarray(image.affine, dtype=np.float64) @ to_input).astype(np.float64)
