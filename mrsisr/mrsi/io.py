"""Reading MRSI metabolite-map volumes (NIfTI, MINC2) and bringing them to the network's value range.

- **Formats**: NIfTI-1/2 (``.nii``, ``.nii.gz``; 3D, or 4D with a singleton fourth axis) and MINC2
  (``.mnc``, HDF5, the format of the open Vienna 7T glioma maps), both read by nibabel (MINC2 through
  h5py).
- **Orientation**: every volume is reoriented to the closest RAS+ voxel order (x left->right, y
  posterior->anterior, z inferior->superior), so that an axial slice is ``data[:, :, k]`` whatever the
  file's axis order; the affine is carried along and stays exact. The file's own affine and slice axis
  are kept (:attr:`MRSIVolume.source_affine`, :attr:`MRSIVolume.slice_axis`) so that results can be
  written back in the file's voxel order (:func:`from_ras`) and non-axial maps recognised
  (:func:`axial_problem`). A NIfTI whose qform and sform codes are both 0 has no spatial information and
  is refused.
- **Metabolite**: from the file name (see :data:`METABOLITE_ALIASES`) or given explicitly.
- **Mask**: NaN, infinite and negative voxels are invalid (fitting failures, outside the brain); they
  are counted in :attr:`MRSIVolume.mask_message`, and filled with 0 (the background of the training
  maps) before any resampling.
- **Normalisation**: each axial slice is divided by its largest valid value, as the training maps were
  divided by theirs; the divisor (``scale``) is kept so that outputs return to the input's units.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".mnc")

#: Spellings of metabolite names in MRSI file names (lower case, no spaces) -> the study's kinds.
METABOLITE_ALIASES: dict[str, str] = {
    "naa": "NAA",
    "tnaa": "NAA",
    "naa+naag": "NAA",
    "naag+naa": "NAA",
    "cr": "tCr",
    "tcr": "tCr",
    "cr+pcr": "tCr",
    "pcr+cr": "tCr",
    "cre": "tCr",
    "cho": "tCho",
    "tcho": "tCho",
    "gpc+pch": "tCho",
    "pch+gpc": "tCho",
    "gpc+pc": "tCho",
}
KINDS: tuple[str, ...] = ("NAA", "tCr", "tCho")


@dataclass(frozen=True)
class MRSIVolume:
    """A metabolite map (or anatomical guide) volume in RAS+ voxel order.

    Attributes
    ----------
    path : pathlib.Path
        The file it was read from.
    data : ndarray, shape (X, Y, Z), float32
        Values in the file's units; invalid voxels are NaN.
    affine : ndarray, shape (4, 4)
        Voxel to world (scanner RAS, mm) transform of ``data``.
    metabolite : str or None
        One of :data:`KINDS`, None for a guide volume, or (read with ``any_name=True``) the map's own name.
    n_nan, n_inf, n_negative : int
        Voxels of the file that were NaN, infinite or negative (all now NaN in ``data``).
    source_affine : ndarray, shape (4, 4), or None
        The affine of the file's own voxel order (None: the same as ``affine``).
    slice_axis : int
        The file's axis along which its slices were stored (NIfTI: the header's slice dimension, else the
        third; MINC2: the first, its slowest dimension).
    """

    path: Path
    data: np.ndarray
    affine: np.ndarray
    metabolite: str | None
    n_nan: int = 0
    n_inf: int = 0
    n_negative: int = 0
    source_affine: np.ndarray | None = None
    slice_axis: int = 2

    @property
    def file_affine(self) -> np.ndarray:
        """The affine of the file's own voxel order."""
        return self.affine if self.source_affine is None else self.source_affine

    @property
    def mask(self) -> np.ndarray:
        """Boolean (X, Y, Z) array of the valid (finite, non-negative) voxels."""
        return np.isfinite(self.data)

    @property
    def voxel_mm(self) -> np.ndarray:
        """Voxel size along the three axes, in mm."""
        return np.sqrt(np.sum(np.square(self.affine[:3, :3]), axis=0))

    @property
    def mask_message(self) -> str:
        """One line saying how many voxels were masked and why."""
        total = self.data.size
        invalid = total - int(self.mask.sum())
        return (
            f"{self.path.name}: {invalid} of {total} voxels masked "
            f"({self.n_nan} NaN, {self.n_inf} infinite, {self.n_negative} negative)"
        )


def metabolite_from_name(path: str | os.PathLike) -> str | None:
    """Return the study's metabolite kind named in a file name, or None if it names none.

    The name (without folders and extension) is split at ``_``, ``-``, ``.`` and spaces; each part is
    looked up in :data:`METABOLITE_ALIASES` (case-insensitive). ``NAA+NAAG_amp.mnc`` -> ``"NAA"``,
    ``sub-01_GPC+PCh.nii.gz`` -> ``"tCho"``, ``tCr.nii`` -> ``"tCr"``.

    Raises
    ------
    ValueError
        If the name mentions more than one kind (e.g. a ratio map ``Cho_NAA.nii``).
    """
    name = map_stem(path)
    found = {METABOLITE_ALIASES[part] for part in re.split(r"[_\-.\s]+", name.lower()) if part in METABOLITE_ALIASES}
    if len(found) > 1:
        raise ValueError(f"{path}: the file name names several metabolites {sorted(found)}; pass the metabolite")
    return found.pop() if found else None


def _check_suffix(path: Path) -> None:
    if not path.name.lower().endswith(SUFFIXES):
        raise ValueError(f"{path}: not a NIfTI or MINC2 file (expected one of {', '.join(SUFFIXES)})")


def _load_image(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Read the array, affine and slice axis of a NIfTI or MINC2 file, with clear errors."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    _check_suffix(path)
    try:
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float64)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # nibabel, gzip, h5py and numpy raise many types for damaged files
        raise ValueError(f"{path}: cannot be read as NIfTI or MINC2 ({type(error).__name__}: {error})") from error
    slice_axis = 2
    if isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        if int(image.header["qform_code"]) == 0 and int(image.header["sform_code"]) == 0:
            raise ValueError(
                f"{path}: has no spatial orientation (NIfTI qform and sform codes are both 0), so its voxel size "
                "and position are unknown; set them from the scanner data (e.g. fslorient or nibabel's set_sform)"
            )
        declared = image.header.get_dim_info()[2]
        slice_axis = 2 if declared is None else int(declared)
    else:
        slice_axis = 0  # MINC2: nibabel keeps the file's dimension order, slowest (the slices) first
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ValueError(f"{path}: has no valid 3D spatial affine (got {affine.tolist()})")
    return data, affine, slice_axis


def _as_3d(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume (or 4D with a singleton 4th axis), got shape {data.shape}")
    if min(data.shape) == 0 or min(data.shape[:2]) < 2:
        raise ValueError(f"{path}: volume of shape {data.shape} is empty or not a stack of 2D slices")
    return data


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder and flip the axes of ``data`` to the closest RAS+ order; return the data and its new affine."""
    orientation = io_orientation(affine)
    reoriented = apply_orientation(data, orientation)
    return reoriented, affine @ inv_ornt_aff(orientation, data.shape)


def from_ras(data: np.ndarray, source_affine: np.ndarray) -> np.ndarray:
    """Undo :func:`to_ras`: bring RAS-ordered ``data`` back to the voxel order of a file with ``source_affine``.

    The shape of ``data`` may differ from the file's (an upscaled volume): only axes are permuted and flipped.
    """
    ras = axcodes2ornt("RAS")
    return apply_orientation(data, ornt_transform(ras, io_orientation(source_affine)))


def orientation_code(affine: np.ndarray) -> str:
    """The three-letter orientation of an affine's voxel axes, e.g. ``"LPI"`` or ``"RAS"`` (nibabel's aff2axcodes)."""
    return "".join(str(code) for code in nib.aff2axcodes(affine))


def axial_problem(volume: MRSIVolume, max_degrees: float = 45.0) -> str | None:
    """Say why ``volume``'s slices are not axial, or return None when they are.

    The file's slice axis (:attr:`MRSIVolume.slice_axis`) must point within ``max_degrees`` of the
    superior-inferior direction and be the axis that RAS reorientation makes the third.
    """
    affine = volume.file_affine
    direction = affine[:3, volume.slice_axis]
    degrees = float(np.degrees(np.arccos(min(1.0, abs(direction[2]) / np.linalg.norm(direction)))))
    becomes_third = int(io_orientation(affine)[volume.slice_axis, 0]) == 2
    if degrees <= max_degrees and becomes_third:
        return None
    return (
        f"{volume.path}: the slices are not axial (voxel axes {orientation_code(affine)}; the slice axis, file axis "
        f"{volume.slice_axis}, is {degrees:.0f} degrees from superior-inferior, more than {max_degrees:.0f})"
    )


def load_mrsi_volume(
    path: str | os.PathLike, metabolite: str | None = None, guide: bool = False, any_name: bool = False
) -> MRSIVolume:
    """Read a metabolite map (or, with ``guide=True``, an anatomical volume) from NIfTI or MINC2.

    Parameters
    ----------
    path : path-like
        ``.nii``, ``.nii.gz`` or ``.mnc`` file, 3D or 4D with a singleton fourth axis.
    metabolite : str, optional
        One of :data:`KINDS` or an alias; taken from the file name when not given.
    guide : bool
        Read an anatomical guide (FLAIR/T1): no metabolite is needed.
    any_name : bool
        Accept any map: a name that is not one of :data:`KINDS` (another metabolite, a ratio such as
        ``NAA_Cr``) becomes the volume's ``metabolite`` as given (``metabolite``) or as the file's stem.

    Returns
    -------
    MRSIVolume
        RAS+ data with NaN where the file had NaN, infinite or negative values.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Unreadable or truncated file, no spatial affine (or NIfTI qform and sform codes 0), wrong dimensions,
        an empty volume, a volume without a single valid voxel, or an unknown metabolite.
    """
    path = Path(path)
    data, source_affine, slice_axis = _load_image(path)
    data = _as_3d(data, path)
    kind = None if guide else _resolve_metabolite(path, metabolite, any_name)
    n_nan = int(np.isnan(data).sum())
    n_inf = int(np.isinf(data).sum())
    with np.errstate(invalid="ignore"):
        n_negative = int((data < 0).sum())
        data = np.where(np.isfinite(data) & (data >= 0), data, np.nan)
    if not np.isfinite(data).any():
        raise ValueError(f"{path}: no valid voxel (all {data.size} are NaN, infinite or negative)")
    data, affine = to_ras(data, source_affine)
    return MRSIVolume(path, data.astype(np.float32), affine, kind, n_nan, n_inf, n_negative, source_affine, slice_axis)


def map_stem(path: str | os.PathLike) -> str:
    """The file name without its folders and its NIfTI or MINC2 extension."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _resolve_metabolite(path: Path, metabolite: str | None, any_name: bool = False) -> str:
    if metabolite is not None:
        kind = metabolite if metabolite in KINDS else METABOLITE_ALIASES.get(metabolite.lower().replace(" ", ""))
        if kind is None and any_name:
            return metabolite
        if kind is None:
            raise ValueError(f"unknown metabolite {metabolite!r}; known: {', '.join(sorted(METABOLITE_ALIASES))}")
        return kind
    if any_name:
        try:
            return metabolite_from_name(path) or map_stem(path)
        except ValueError:  # a ratio map names two metabolites
            return map_stem(path)
    kind = metabolite_from_name(path)
    if kind is None:
        raise ValueError(
            f"{path}: the file name does not name a metabolite ({', '.join(KINDS)} or an alias such as "
            "NAA+NAAG, Cr+PCr, GPC+PCh); pass it explicitly (--metabolite)"
        )
    return kind


def normalise_slices(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide each axial slice by its largest valid value; invalid voxels become 0.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z)
        Values in any units, NaN where invalid.

    Returns
    -------
    normalised : ndarray, shape (X, Y, Z), float32
        Values in [0, 1]; 0 where ``data`` is NaN and on slices without a positive value.
    scales : ndarray, shape (Z,), float64
        The divisor of each slice (its maximum); NaN for slices without a valid voxel, 0 for slices
        whose valid voxels are all 0. ``normalised * scales`` gives ``data`` back.
    """
    filled = np.nan_to_num(np.asarray(data, dtype=np.float64), nan=0.0)
    has_valid = np.isfinite(data).any(axis=(0, 1))
    scales = np.where(has_valid, filled.max(axis=(0, 1)), np.nan)
    divisor = np.where(scales > 0, scales, 1.0)
    return (filled / divisor).astype(np.float32), scales


def world_corners(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the outer corners of the in-plane field of view, per slice centre.

    Returns an array of shape (4, 3): the corners ``(-0.5, -0.5)``, ``(X-0.5, -0.5)``, ``(-0.5, Y-0.5)``
    and ``(X-0.5, Y-0.5)`` (voxel units, pixel-area convention) of slice 0.
    """
    x, y = shape[0] - 0.5, shape[1] - 0.5
    corners = np.array([[-0.5, -0.5, 0.0, 1.0], [x, -0.5, 0.0, 1.0], [-0.5, y, 0.0, 1.0], [x, y, 0.0, 1.0]])
    return (corners @ affine.T)[:, :3]


def check_same_field_of_view(volume: MRSIVolume, other: MRSIVolume, tolerance_mm: float | None = None) -> None:
    """Raise ValueError unless ``other`` covers the same in-plane field of view and the same axial slices.

    The in-plane matrix may differ (a guide may be finer than the map); the corners of the field of
    view must agree within ``tolerance_mm`` (default: a quarter of the map's in-plane voxel) and the
    slices must be the same (same count, same slice positions).
    """
    if tolerance_mm is None:
        tolerance_mm = 0.25 * float(volume.voxel_mm[:2].min())
    problem = None
    if volume.data.shape[2] != other.data.shape[2]:
        problem = f"{other.data.shape[2]} slices instead of {volume.data.shape[2]}"
    else:
        corner_gap = np.abs(
            world_corners(volume.data.shape, volume.affine) - world_corners(other.data.shape, other.affine)
        )
        slice_gap = np.abs(volume.affine[:3, 2] - other.affine[:3, 2])
        if corner_gap.max() > tolerance_mm or slice_gap.max() > tolerance_mm:
            problem = f"field of view or slices differ by up to {max(corner_gap.max(), slice_gap.max()):.2f} mm"
    if problem:
        raise ValueError(
            f"guide {other.path} is on a different grid than {volume.path} ({problem}; shapes "
            f"{other.data.shape} and {volume.data.shape}): resample it onto the map's field of view first "
            "(e.g. nilearn.image.resample_img with a finer matrix)"
        )
