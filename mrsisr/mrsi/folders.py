"""Which files of an MRSI output folder are concentration (or ratio) maps worth upscaling.

Folders as MRSI tools write them (DESIGN.md section 7):

- FSL-MRS ``fsl_mrsi``: ``concs/<scaling>/<metab>.nii.gz`` (upscaled), ``uncertainties/<metab>_sd.nii.gz``,
  ``qc/<metab>_snr.nii.gz``, ``qc/<metab>_fwhm.nii.gz``, ``qc/fit_failed.nii.gz`` and 4D spectra in ``fit/``
  (skipped);
- the Vienna 7T pipeline: ``<Met>_amp_map.mnc`` (upscaled) with CRLBs in ``<Met>_sd_map.mnc`` (skipped);
- any folder of 3D NIfTI or MINC2 maps.

A file is skipped, with its reason, when it is hidden (e.g. the temporary of an interrupted write), lies in
an ``uncertainties`` or ``qc`` folder, its name marks an uncertainty (``sd``, ``std``, ``crlb``), quality
(``snr``, ``fwhm``, ``fit_failed``) or mask, or it is not one 3D volume. ``include`` patterns (shell
patterns matched against the relative path or the file name) force a skipped file in, except hidden files
and files that are not 3D.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib

from mrsisr.mrsi.io import SUFFIXES, map_stem

#: Folders whose maps are not concentrations -> what they hold.
SKIPPED_FOLDERS: dict[str, str] = {
    "uncertainties": "an uncertainty map",
    "qc": "a quality-control map",
}
#: Name parts that mark a map which is not a concentration -> what it is.
SKIPPED_NAME_PARTS: dict[str, str] = {
    "sd": "an uncertainty (SD) map",
    "std": "an uncertainty (SD) map",
    "crlb": "an uncertainty (CRLB) map",
    "snr": "a signal-to-noise map",
    "fwhm": "a linewidth (FWHM) map",
    "failed": "a fit-failure map",
    "mask": "a mask",
}


@dataclass
class MapSelection:
    """The maps of a folder to upscale and those skipped.

    Attributes
    ----------
    maps : list of pathlib.Path
        Paths relative to the folder, sorted.
    skipped : list of (pathlib.Path, str)
        Relative path and the reason, sorted by path.
    """

    maps: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _shape(path: Path) -> tuple[int, ...] | None:
    """The image shape from the header (no data read), or None if the header cannot be read."""
    try:
        return tuple(int(n) for n in nib.load(path).shape)
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is loaded for upscaling
        return None


def _is_3d(shape: tuple[int, ...] | None) -> bool:
    return shape is None or len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)


def skip_reason(relative: Path) -> str | None:
    """Why the map at ``relative`` (a path inside an MRSI folder) is not a concentration map, or None."""
    for part in relative.parts[:-1]:
        if part.lower() in SKIPPED_FOLDERS:
            return f"{SKIPPED_FOLDERS[part.lower()]} (in {part}/), not a concentration"
    for part in re.split(r"[_\-.\s]+", map_stem(relative).lower()):
        if part in SKIPPED_NAME_PARTS:
            return f"{SKIPPED_NAME_PARTS[part]}, not a concentration"
    return None


def _included(relative: Path, include: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(relative.as_posix(), p) or fnmatch.fnmatch(relative.name, p) for p in include)


def find_maps(root: str | os.PathLike, include: Sequence[str] = ()) -> MapSelection:
    """Sort the NIfTI and MINC2 files under ``root`` into maps to upscale and skipped files.

    Parameters
    ----------
    root : path-like
        An MRSI output folder (searched recursively).
    include : sequence of str
        Shell patterns (``"qc/*_snr.nii.gz"``, ``"*_sd_map.mnc"``) of files to upscale although their name or
        folder marks them as not concentrations.

    Returns
    -------
    MapSelection

    Raises
    ------
    NotADirectoryError
        If ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    selection = MapSelection()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES)):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            selection.skipped.append((relative, "a hidden file (e.g. the temporary of an interrupted write)"))
            continue
        shape = _shape(path)
        if not _is_3d(shape):
            selection.skipped.append((relative, f"not a 3D map (shape {shape})"))
            continue
        reason = skip_reason(relative)
        if reason is None or _included(relative, include):
            selection.maps.append(relative)
        else:
            selection.skipped.append((relative, f"{reason} (--include to force it)"))
    return selection
