"""Four-fold in-plane upscaling of MRSI metabolite-map volumes (``mrsisr upscale``).

Every axial slice of a 3D (or singleton-4D) map is normalised to [0, 1] by its maximum (invalid voxels
set to 0, as the background of the training maps), upscaled by the network and multiplied back by the
same maximum, so the output is in the input's units. The network is fully convolutional
(:func:`mrsisr.network.model.predict`), so any in-plane matrix works (32x32, 64x64, 32x42, ...); it was trained
on 32x32 maps of 6.875 mm pixels, and gives its best on maps of about that resolution.

Output geometry (pixel-area alignment, as everywhere in the study): each input voxel is split into
4 x 4 output voxels that tile it exactly, so the output affine has a quarter of the in-plane voxel
size and its origin moves by ``-(1 - 1/4) / 2`` input voxels along both in-plane axes.

Masked voxels: output voxels that lie inside an input voxel that was NaN, infinite or negative are NaN
(not 0), so that "no data" stays distinguishable from "no metabolite"; slices without any valid voxel
are NaN throughout and reported.

Guide: a co-registered FLAIR (or T1) volume covering the same field of view and the same slices, on
any in-plane matrix (ideally the output's, four times the map's); each slice is resampled to the output
matrix by cubic spline and scaled to [0, 1] by its maximum. A FLAIR-guided model needs one; an unguided
model refuses one (it could not use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from mrsisr.mrsi.io import MRSIVolume, check_same_field_of_view, load_mrsi_volume, normalise_slices
from mrsisr.study.atomic import atomic_path

FACTOR = 4
OUTPUT_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")


def upscaled_affine(affine: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """Return the affine of a volume whose first two axes are ``factor`` times finer than ``affine``'s.

    Output voxel ``i`` lies at input voxel coordinate ``(i + 0.5) / factor - 0.5``: the output voxels
    tile each input voxel (pixel-area alignment), so the field of view is unchanged.
    """
    shift = -(1.0 - 1.0 / factor) / 2.0
    refine = np.diag([1.0 / factor, 1.0 / factor, 1.0, 1.0])
    refine[:2, 3] = shift
    return np.asarray(affine, dtype=np.float64) @ refine


def guide_slices(guide: MRSIVolume, shape: tuple[int, int]) -> np.ndarray:
    """Resample each axial slice of ``guide`` to ``shape`` (cubic spline) and scale it to [0, 1].

    Returns
    -------
    ndarray, shape (Z, H, W), float32
        One guide image per slice; invalid voxels are 0.
    """
    filled = np.nan_to_num(guide.data, nan=0.0)
    zoom = (shape[0] / filled.shape[0], shape[1] / filled.shape[1])
    slices = []
    for k in range(filled.shape[2]):
        image = filled[:, :, k]
        if image.shape != tuple(shape):
            image = ndimage.zoom(image, zoom, order=3, mode="nearest", grid_mode=True)
        image = np.clip(image, 0.0, None)
        top = image.max()
        slices.append(image / top if top > 0 else image)
    return np.stack(slices).astype(np.float32)


def upscale_volume(
    volume: MRSIVolume, model, guide: MRSIVolume | None = None, batch_size: int = 8, progress: bool = True
) -> np.ndarray:
    """Upscale every axial slice of ``volume`` four-fold in-plane with ``model``.

    Parameters
    ----------
    volume : MRSIVolume
        The metabolite map, NaN where invalid.
    model : keras.Model
        An mrsisr network (:func:`mrsisr.network.model.load_model`).
    guide : MRSIVolume, optional
        Co-registered anatomical volume (required by, and only accepted by, a guided model).
    batch_size : int
        Slices per forward pass.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ndarray, shape (4X, 4Y, Z), float32
        In the units of ``volume``; NaN inside masked input voxels and on slices without data.
    """
    from mrsisr.network.model import is_guided, predict

    guided = is_guided(model)
    if guided and guide is None:
        raise ValueError(
            f"the model is FLAIR-guided: pass a co-registered FLAIR or T1 volume (--guide) for {volume.path}, "
            "or use an unguided model (--model)"
        )
    if not guided and guide is not None:
        raise ValueError(
            f"the model is not guided and cannot use the guide {guide.path}: drop --guide or pass a guided --model"
        )
    normalised, scales = normalise_slices(volume.data)
    usable = np.flatnonzero(np.isfinite(scales))
    height, width, depth = volume.data.shape
    out = np.full((FACTOR * height, FACTOR * width, depth), np.nan, dtype=np.float32)
    guides = guide_slices(guide, (FACTOR * height, FACTOR * width)) if guide is not None else None
    with tqdm(total=len(usable), desc=f"upscaling {volume.path.name}", unit="slice", disable=not progress) as bar:
        for start in range(0, len(usable), batch_size):
            chosen = usable[start : start + batch_size]
            lr = np.moveaxis(normalised[:, :, chosen], 2, 0)
            sr = predict(model, lr, None if guides is None else guides[chosen], batch_size=batch_size)
            out[:, :, chosen] = np.moveaxis(sr, 0, 2) * scales[chosen].astype(np.float32)
            bar.update(len(chosen))
    inside = np.repeat(np.repeat(volume.mask, FACTOR, axis=0), FACTOR, axis=1)
    out[~inside] = np.nan
    return out


def _check_output(output: Path, force: bool) -> None:
    if not output.name.lower().endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"{output}: the output must be NIfTI (.nii or .nii.gz)")
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists: pass --force to overwrite it")


def upscale_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    guide: str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    metabolite: str | None = None,
    force: bool = False,
) -> Path:
    """Upscale a metabolite-map file four-fold in-plane and write it as NIfTI.

    Parameters
    ----------
    input : path-like
        3D (or singleton-4D) map: ``.nii``, ``.nii.gz`` or ``.mnc`` (MINC2).
    output : path-like
        ``.nii`` or ``.nii.gz`` file to write (atomically).
    guide : path-like, optional
        Co-registered FLAIR/T1 volume covering the same field of view and slices.
    model_path : path-like, optional
        Trained ``.keras`` model; default: the packaged model (:mod:`mrsisr.network.packaged`).
    metabolite : str, optional
        Metabolite when the file name does not name one (it is recorded in the output's description).
    force : bool
        Overwrite an existing output.

    Returns
    -------
    pathlib.Path
        The written file, in RAS+ voxel order, with the input's units.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        Missing input or model, existing output without ``force``, or bad input (see
        :func:`mrsisr.mrsi.io.load_mrsi_volume`, guide on a different grid, guided model without a guide).
    """
    from mrsisr.network.model import load_model
    from mrsisr.network.packaged import default_model_path

    output = Path(output)
    _check_output(output, force)
    volume = load_mrsi_volume(input, metabolite=metabolite)
    print(volume.mask_message)
    guide_volume = None
    if guide is not None:
        guide_volume = load_mrsi_volume(guide, guide=True)
        check_same_field_of_view(volume, guide_volume)
    model = load_model(model_path if model_path is not None else default_model_path())
    upscaled = upscale_volume(volume, model, guide_volume)
    empty = int(np.isnan(normalise_slices(volume.data)[1]).sum())
    if empty:
        print(f"{volume.path.name}: {empty} slice(s) without valid voxels left NaN")
    image = nib.Nifti1Image(upscaled, upscaled_affine(volume.affine))
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = f"mrsisr x{FACTOR} {volume.metabolite}"[:79].encode()
    suffix = ".nii.gz" if output.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_path(output, suffix=suffix) as tmp:
        nib.save(image, tmp)
    print(f"wrote {output} {upscaled.shape}")
    return output
