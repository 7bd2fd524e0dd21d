"""Four-fold in-plane upscaling of MRSI metabolite maps, one file or a whole MRSI output folder (``mrsisr upscale``).

Every axial slice of a 3D (or singleton-4D) map is normalised to [0, 1] by its maximum (invalid voxels
set to 0, as the background of the training maps), upscaled by the network and multiplied back by the
same maximum, so the output is in the input's units. The network is fully convolutional
(:func:`mrsisr.network.model.predict`), so any in-plane matrix works (32x32, 64x64, 32x42, ...); it was trained
on 32x32 maps of 6.875 mm pixels, and gives its best on maps of about that resolution.

Output geometry (pixel-area alignment, as everywhere in the study): each input voxel is split into
4 x 4 output voxels that tile it exactly, so the field of view is unchanged. The output keeps the input
file's voxel order and orientation (an LPI input gives an LPI output): the volume is upscaled in RAS+ order
and its axes are permuted and flipped back; the affine is the input file's with a quarter of the in-plane
voxel size (:func:`upscaled_affine`), exact.

Values a user can trust:

- output voxels inside an input voxel that was NaN, infinite or negative are NaN ("no data"); those inside
  an input voxel that was exactly 0 are 0 ("no metabolite", e.g. outside the brain), so the network's
  ringing never leaks outside the input's valid region; slices without a valid voxel are NaN throughout;
- concentrations are never negative: negative network outputs are set to 0 and counted;
- values that would overflow float32 are refused, not written as Inf;
- the data-consistency error (:func:`mrsisr.mrsi.consistency.data_consistency_error`) says how well the
  output, taken back to the input's matrix by the study's k-space truncation, agrees with the input;
  ``data_consistency=True`` makes it vanish (:func:`mrsisr.mrsi.consistency.enforce_data_consistency`)
  before the two constraints above, which take precedence: both errors, before and after the constraints,
  are reported;
- a JSON sidecar beside each output records all of that with the provenance (:mod:`mrsisr.mrsi.sidecar`).

Maps whose slices are not axial are refused unless ``allow_oblique`` (they would be upscaled across the
slices). Outputs are never written onto the input or the guide, are created exclusively unless ``force``,
and leave no temporary behind (:mod:`mrsisr.mrsi.writing`). Folders are sorted into concentration maps and
the rest by :mod:`mrsisr.mrsi.folders`.

Guide: a co-registered FLAIR (or T1) volume covering the same field of view and the same slices, on
any in-plane matrix (ideally the output's, four times the map's); each slice is resampled to the output
matrix by cubic spline and scaled to [0, 1] by its maximum. A FLAIR-guided model needs one; an unguided
model refuses one (it could not use it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation
from scipy import ndimage
from tqdm.auto import tqdm

from mrsisr.mrsi.consistency import data_consistency_error, enforce_data_consistency
from mrsisr.mrsi.folders import find_maps
from mrsisr.mrsi.io import (
    MRSIVolume,
    axial_problem,
    check_same_field_of_view,
    from_ras,
    load_mrsi_volume,
    normalise_slices,
    orientation_code,
)
from mrsisr.mrsi.sidecar import DERIVED_NOTICE, provenance, sidecar_path
from mrsisr.mrsi.writing import OutputError, check_not_source, remove_stale_temporaries, same_file, write_exclusively
from mrsisr.study.atomic import file_sha256

FACTOR = 4
OUTPUT_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
FLOAT32_MAX = float(np.finfo(np.float32).max)
Log = Callable[[str], object]


def upscaled_affine(affine: np.ndarray, factor: int = FACTOR, axes: Sequence[int] = (0, 1)) -> np.ndarray:
    """Return the affine of a volume whose ``axes`` are ``factor`` times finer than ``affine``'s.

    Output voxel ``i`` lies at input voxel coordinate ``(i + 0.5) / factor - 0.5`` along each refined axis:
    the output voxels tile each input voxel (pixel-area alignment), so the field of view is unchanged. The
    refinement is symmetric, so it commutes with flipping an axis.
    """
    refine = np.eye(4)
    for axis in axes:
        refine[axis, axis] = 1.0 / factor
        refine[axis, 3] = -(1.0 - 1.0 / factor) / 2.0
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


@dataclass(frozen=True)
class Upscaled:
    """An upscaled volume and what was done to it.

    Attributes
    ----------
    data : ndarray, shape (4X, 4Y, Z), float32
        RAS+ voxel order, the input's units; NaN where the input had no data, 0 where it was 0.
    n_clipped : int
        Voxels set to 0 because they came out negative.
    consistency_error : float
        Relative RMS difference between ``data`` taken back to the input's matrix and the input, over the
        input's valid voxels (:func:`mrsisr.mrsi.consistency.data_consistency_error`).
    unconstrained_error : float
        The same before negatives were clipped and the voxels where the input was 0 or NaN were set
        (after the data-consistency step when it was asked for: then float32 rounding).
    n_empty_slices : int
        Slices without a valid voxel (NaN throughout).
    """

    data: np.ndarray
    n_clipped: int
    consistency_error: float
    unconstrained_error: float
    n_empty_slices: int


def _blocks(mask: np.ndarray) -> np.ndarray:
    """Repeat each in-plane voxel of a (Z, X, Y) mask into its FACTOR x FACTOR output voxels."""
    return np.repeat(np.repeat(mask, FACTOR, axis=1), FACTOR, axis=2)


def _constrain(maps: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Clip negatives to 0 and zero the voxels outside ``keep``; return the maps and the clipped count."""
    negative = (maps < 0) & keep
    return np.where(keep, np.maximum(maps, 0.0), 0.0), int(negative.sum())


def upscale_volume(
    volume: MRSIVolume,
    model,
    guide: MRSIVolume | None = None,
    batch_size: int = 8,
    progress: bool = True,
    data_consistency: bool = False,
) -> Upscaled:
    """Upscale every axial slice of ``volume`` four-fold in-plane with ``model`` (see the module's notes).

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
        Show a tqdm progress bar over the slices.
    data_consistency : bool
        Replace the output's central k-space by the input's, before the constraints.

    Returns
    -------
    Upscaled

    Raises
    ------
    ValueError
        Guide missing for a guided model or given to an unguided one; values that would overflow float32.
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
    lr = np.moveaxis(normalised, 2, 0)[usable].astype(np.float64)
    sr = np.zeros((len(usable), FACTOR * lr.shape[1], FACTOR * lr.shape[2]))
    guides = guide_slices(guide, sr.shape[1:]) if guide is not None else None
    with tqdm(total=len(usable), desc=f"upscaling {volume.path.name}", unit="slice", disable=not progress) as bar:
        for start in range(0, len(usable), batch_size):
            chosen = slice(start, start + batch_size)
            picked = usable[chosen]
            sr[chosen] = predict(model, lr[chosen], None if guides is None else guides[picked], batch_size=batch_size)
            bar.update(len(picked))
    valid = np.moveaxis(volume.mask, 2, 0)[usable]
    no_data = _blocks(~valid)
    keep = _blocks(valid & (lr > 0))
    if data_consistency and len(usable):
        sr = enforce_data_consistency(sr, lr)
    errors = [data_consistency_error(sr, lr, mask=valid, weights=scales[usable]) if len(usable) else 0.0]
    sr, n_clipped = _constrain(sr, keep)
    errors.insert(0, data_consistency_error(sr, lr, mask=valid, weights=scales[usable]) if len(usable) else 0.0)
    values = sr * scales[usable, None, None]
    if not np.all(np.isfinite(values)) or np.abs(values).max(initial=0.0) > FLOAT32_MAX:
        raise ValueError(
            f"{volume.path}: upscaled values would reach {np.abs(values).max():.3g}, beyond float32's range "
            f"({FLOAT32_MAX:.3g}); rescale the map (e.g. to mM) first"
        )
    values[no_data] = np.nan
    out = np.full((volume.data.shape[2], *sr.shape[1:]), np.nan, dtype=np.float32)
    out[usable] = values
    return Upscaled(np.moveaxis(out, 0, 2), n_clipped, *errors, volume.data.shape[2] - len(usable))


@dataclass(frozen=True)
class LoadedModel:
    """A network with the file it came from (for errors and sidecars)."""

    network: object
    path: Path
    sha256: str
    packaged: bool


def load_upscaling_model(model_path: str | os.PathLike | None, log: Log = print) -> LoadedModel:
    """Load ``model_path``, or the packaged model (sha256 checked) with a line saying what it was trained on."""
    from mrsisr.network.model import load_model
    from mrsisr.network.packaged import PHANTOM_NOTICE, default_model_path

    packaged = model_path is None
    path = default_model_path() if packaged else Path(model_path)
    if packaged:
        log(f"note: {PHANTOM_NOTICE}")
    network = load_model(path)
    return LoadedModel(network, path, file_sha256(path), packaged)


def output_name(relative: Path) -> Path:
    """The output path of an input map inside an output folder: the same path, MINC2 written as ``.nii.gz``."""
    return relative.with_name(relative.name[: -len(".mnc")] + ".nii.gz") if relative.suffix == ".mnc" else relative


def _check_output_name(output: Path) -> None:
    if not output.name.lower().endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"{output}: the output must be NIfTI (.nii or .nii.gz)")


@dataclass(frozen=True)
class Settings:
    """What every map of one ``mrsisr upscale`` call shares."""

    model: LoadedModel
    guide: MRSIVolume | None = None
    metabolite: str | None = None
    force: bool = False
    allow_oblique: bool = False
    data_consistency: bool = False
    command: str | None = None


def _prepare(input: Path, output: Path, settings: Settings, log: Log) -> None:
    """Refuse outputs that would destroy a source or an existing result; remove stale temporaries."""
    _check_output_name(output)
    sidecar = sidecar_path(output)
    guide = None if settings.guide is None else settings.guide.path
    for target in (output, sidecar):
        check_not_source(target, {"input": input, "guide": guide, "model": settings.model.path})
    for target in (output, sidecar):
        removed = remove_stale_temporaries(target)
        if removed:
            log(f"removed {len(removed)} stale temporary file(s) of {target.name} left by an interrupted run")
        if target.is_dir():
            raise OutputError(f"cannot write {target}: it is a directory")
        if target.exists() and not settings.force:
            raise FileExistsError(f"{target} exists: pass --force to overwrite it")


def _sidecar(input: Path, output: Path, volume: MRSIVolume, result: Upscaled, settings: Settings) -> dict:
    guide = settings.guide
    return {
        **provenance(),
        "input": str(input),
        "input_sha256": file_sha256(input),
        "guide": None if guide is None else str(guide.path),
        "guide_sha256": None if guide is None else file_sha256(guide.path),
        "model": str(settings.model.path),
        "model_sha256": settings.model.sha256,
        "packaged_model": settings.model.packaged,
        "command": settings.command,
        "output": output.name,
        "metabolite": volume.metabolite,
        "orientation": orientation_code(volume.file_affine),
        "factor": FACTOR,
        "masked_input_voxels": {"nan": volume.n_nan, "infinite": volume.n_inf, "negative": volume.n_negative},
        "clipped_negative_voxels": result.n_clipped,
        "empty_slices": result.n_empty_slices,
        "data_consistency": {
            "enforced": settings.data_consistency,
            "relative_rms_error": result.consistency_error,
            "relative_rms_error_before_constraints": result.unconstrained_error,
            "definition": "output taken back to the input's matrix by k-space truncation (the study's "
            "make_lowres 'kspace'), relative RMS difference from the input over its valid voxels; 'before "
            "constraints': before negatives were clipped to 0 and voxels where the input was 0 or NaN were set",
        },
        "notice": DERIVED_NOTICE,
    }


def _upscale_one(input: Path, output: Path, settings: Settings, log: Log, progress: bool) -> Path:
    """Upscale one map and write it and its sidecar (see :func:`upscale_file`)."""
    _prepare(input, output, settings, log)
    volume = load_mrsi_volume(input, metabolite=settings.metabolite, any_name=True)
    log(volume.mask_message)
    problem = axial_problem(volume)
    if problem and not settings.allow_oblique:
        raise ValueError(
            f"{problem}: it would be upscaled across its slices; pass --allow-oblique to upscale it "
            "in the axial plane closest to its slices anyway"
        )
    if problem:
        log(f"warning: {problem}; upscaled in the closest axial plane (--allow-oblique)")
    if settings.guide is not None:
        check_same_field_of_view(volume, settings.guide)
    result = upscale_volume(
        volume, settings.model.network, settings.guide, progress=progress, data_consistency=settings.data_consistency
    )
    if result.n_empty_slices:
        log(f"{volume.path.name}: {result.n_empty_slices} slice(s) without valid voxels left NaN")
    ornt = io_orientation(volume.file_affine)
    in_plane = [axis for axis in range(3) if int(ornt[axis, 0]) in (0, 1)]
    affine = upscaled_affine(volume.file_affine, axes=in_plane)
    image = nib.Nifti1Image(from_ras(result.data, volume.file_affine).astype(np.float32), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = f"mrsisr x{FACTOR} {volume.metabolite}"[:79].encode()
    write_exclusively(output, lambda tmp: nib.save(image, tmp), force=settings.force)
    sidecar = sidecar_path(output)
    text = json.dumps(_sidecar(input, output, volume, result, settings), indent=2, sort_keys=True) + "\n"
    try:
        write_exclusively(sidecar, lambda tmp: tmp.write_text(text, encoding="utf-8"), force=settings.force)
    except BaseException:
        output.unlink(missing_ok=True)  # a map without its sidecar is not a result
        raise
    log(
        f"wrote {output} {image.shape} {orientation_code(affine)} and {sidecar.name}: "
        f"{result.n_clipped} negative voxel(s) clipped to 0, data-consistency error {result.consistency_error:.2e}"
    )
    return output


def upscale_file(
    input: str | os.PathLike,
    output: str | os.PathLike,
    guide: str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    metabolite: str | None = None,
    force: bool = False,
    allow_oblique: bool = False,
    data_consistency: bool = False,
    command: str | None = None,
    log: Log = print,
) -> Path:
    """Upscale a metabolite-map file four-fold in-plane; write it as NIfTI with a JSON sidecar.

    Parameters
    ----------
    input : path-like
        3D (or singleton-4D) map: ``.nii``, ``.nii.gz`` or ``.mnc`` (MINC2), any metabolite or ratio.
    output : path-like
        ``.nii`` or ``.nii.gz`` file to create; its sidecar is the same name with ``.json``.
    guide : path-like, optional
        Co-registered FLAIR/T1 volume covering the same field of view and slices.
    model_path : path-like, optional
        Trained ``.keras`` model; default: the packaged model (:mod:`mrsisr.network.packaged`).
    metabolite : str, optional
        The map's name when the file name does not say (recorded in the output's description and sidecar).
    force : bool
        Overwrite an existing output (never the input, the guide or the model).
    allow_oblique : bool
        Upscale maps whose slices are not axial in the closest axial plane instead of refusing them.
    data_consistency : bool
        Make the output consistent with the input (:func:`mrsisr.mrsi.consistency.enforce_data_consistency`).
    command : str, optional
        The command line, recorded in the sidecar.
    log : callable
        Where progress lines go.

    Returns
    -------
    pathlib.Path
        The written file, in the input file's voxel order, with the input's units.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError, OSError
        Missing input or model; existing output without ``force``; output equal to a source, bad input
        (see :func:`mrsisr.mrsi.io.load_mrsi_volume`), non-axial map, guide on another grid, foreign model,
        values beyond float32; a write refused by the system (:class:`mrsisr.mrsi.writing.OutputError`).
    """
    input, output = Path(input), Path(output)
    _check_output_name(output)
    check_not_source(output, {"input": input, "guide": guide})
    settings = Settings(
        load_upscaling_model(model_path, log),
        None if guide is None else load_mrsi_volume(guide, guide=True),
        metabolite,
        force,
        allow_oblique,
        data_consistency,
        command,
    )
    return _upscale_one(input, output, settings, log, progress=True)


def upscale_folder(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    include: Sequence[str] = (),
    guide: str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    force: bool = False,
    allow_oblique: bool = False,
    data_consistency: bool = False,
    command: str | None = None,
) -> list[Path]:
    """Upscale every concentration or ratio map of an MRSI output folder into ``output_dir``, mirroring its layout.

    The maps are chosen by :func:`mrsisr.mrsi.folders.find_maps` (a line per skipped file); each is written
    as :func:`upscale_file` writes one, MINC2 inputs as ``.nii.gz``, with one progress bar over the maps. A
    map that fails is reported and the others go on.

    Parameters
    ----------
    input_dir, output_dir : path-like
        The MRSI folder and where its upscaled copy goes (not the same folder, not inside it).
    include : sequence of str
        Shell patterns of skipped maps to upscale anyway (e.g. ``"qc/*_snr.nii.gz"``).
    guide, model_path, force, allow_oblique, data_consistency, command
        As for :func:`upscale_file`; the guide serves every map (they share the MRSI grid).

    Returns
    -------
    list of pathlib.Path
        The written maps.

    Raises
    ------
    ValueError
        The output folder is (inside) the input folder, the folder holds no map, or some maps failed
        (after the others were written).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if same_file(input_dir, output_dir) or output_dir.resolve().is_relative_to(input_dir.resolve()):
        raise ValueError(
            f"the output folder {output_dir} is (inside) the input folder {input_dir}: choose one outside it, "
            "so that no input is overwritten and no output is read as an input"
        )
    selection = find_maps(input_dir, include)
    for relative, reason in selection.skipped:
        print(f"skipped {relative}: {reason}")
    if not selection.maps:
        raise ValueError(f"{input_dir}: no concentration map (.nii, .nii.gz or .mnc) to upscale")
    settings = Settings(
        load_upscaling_model(model_path),
        None if guide is None else load_mrsi_volume(guide, guide=True),
        None,
        force,
        allow_oblique,
        data_consistency,
        command,
    )
    written, failed = [], []
    with tqdm(selection.maps, desc=f"upscaling {input_dir.name or input_dir}", unit="map") as bar:
        for relative in bar:
            try:
                written.append(
                    _upscale_one(input_dir / relative, output_dir / output_name(relative), settings, tqdm.write, False)
                )
            except (ValueError, OSError) as error:
                failed.append(relative)
                tqdm.write(f"error: {error}")
    print(f"upscaled {len(written)} map(s) of {input_dir} into {output_dir}; skipped {len(selection.skipped)}")
    if failed:
        raise ValueError(
            f"{len(failed)} of {len(selection.maps)} maps of {input_dir} failed ({', '.join(map(str, failed))}); "
            "their errors are above"
        )
    return written
