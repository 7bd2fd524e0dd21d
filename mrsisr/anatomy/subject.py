"""One subject's anatomy from NIfTI files: a skull-stripped T1, and a FLAIR and tumour mask if there are any.

Volumes are reoriented to RAS+ and resampled to isotropic voxels (1 mm by default); the affine of that
grid comes back with the arrays, so maps synthesised from the subject can be placed in world space. The
T1 is always segmented into partial-volume GM, WM and CSF (:func:`mrsisr.anatomy.segmentation.segment_tissues`)
and the result is checked for plausibility, the error naming the T1 file. A missing FLAIR is rendered from
the segmentation with the phantom's FLAIR model; a missing tumour mask is replaced by a synthetic tumour
(drawn as in the phantom cohort) painted into the T1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping

import numpy as np

from mrsisr.anatomy.nifti import load_nifti_volume, resample_isotropic, resampled_affine, same_grid
from mrsisr.anatomy.phantom import GRADES, T1_SIGNAL, make_tumour, render_flair, tissue_image
from mrsisr.anatomy.segmentation import TISSUES, brain_fractions, check_fractions, segment_tissues

BRATS_LABELS = (0, 1, 2, 4)


def check_labels(labels: np.ndarray, source: str | os.PathLike) -> np.ndarray:
    """Return ``labels`` as uint8 after checking they are BraTS labels 0/1/2/4.

    Raises
    ------
    ValueError
        Naming ``source`` and the unknown label values.
    """
    values = np.unique(labels)
    unknown = sorted(set(values.tolist()) - set(BRATS_LABELS))
    if unknown:
        shown = ", ".join(f"{v:g}" for v in unknown[:10])
        raise ValueError(f"{source}: unknown tumour label(s) {shown}; expected BraTS labels 0, 1, 2, 4")
    return labels.astype(np.uint8)


def relabel(labels: np.ndarray, label_map: Mapping[int, int] | Iterable[tuple[int, int]]) -> np.ndarray:
    """Return ``labels`` with each ``old`` value replaced by ``new`` (``{3: 4}`` for BraTS 2023 masks)."""
    out = labels.copy()
    for old, new in dict(label_map).items():
        out[labels == old] = new
    return out


def grade_from_labels(labels: np.ndarray) -> str:
    """Guess the grade of a tumour mask: HGG when an enhancing part (label 4) exists, else LGG."""
    return "HGG" if (labels == 4).sum() > 0.05 * max((labels > 0).sum(), 1) else "LGG"


def segment_checked(
    t1: np.ndarray, brain: np.ndarray, labels: np.ndarray, method: str, source: str | os.PathLike
) -> dict[str, np.ndarray]:
    """Segment ``t1`` (:func:`segment_tissues`) and refuse an implausible result, naming ``source``.

    Raises
    ------
    ValueError
        ``"<source>: ..."`` when the classifier fails or the non-tumour brain fractions are implausible
        (:func:`mrsisr.anatomy.segmentation.check_fractions`).
    """
    try:
        fractions = segment_tissues(t1, brain, labels, method=method)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    check_fractions(brain_fractions(fractions, brain & (labels == 0)), str(source))
    return fractions


def load_subject(
    t1: str | os.PathLike,
    flair: str | os.PathLike | None = None,
    seg: str | os.PathLike | None = None,
    voxel_mm: float = 1.0,
    grade: str | None = None,
    seed: int = 0,
    segmentation_method: str = "dipy_hmrf",
    label_map: Mapping[int, int] | Iterable[tuple[int, int]] = (),
) -> dict:
    """Load one subject's skull-stripped T1 (and FLAIR, tumour mask) onto a RAS+ isotropic grid, and segment it.

    Parameters
    ----------
    t1 : path-like
        Skull-stripped T1-weighted NIfTI, any orientation and voxel size.
    flair : path-like, optional
        FLAIR on the T1's grid; rendered from the segmentation when missing.
    seg : path-like, optional
        Tumour mask with BraTS labels 0/1/2/4 (after ``label_map``) on the T1's grid; a synthetic tumour
        when missing.
    voxel_mm : float
        Isotropic voxel size of the output grid.
    grade : {"LGG", "HGG"}, optional
        Tumour grade; guessed from the mask (label 4 present: HGG) when not given.
    seed : int
        Seed of the synthetic tumour and FLAIR.
    segmentation_method : str
        Tissue classifier (:data:`mrsisr.anatomy.segmentation.METHODS`).
    label_map : mapping or pairs, optional
        Mask values to rename before checking them, e.g. ``{3: 4}`` for BraTS 2023 (3 = enhancing).

    Returns
    -------
    dict
        ``t1``, ``flair`` (float32), ``labels`` (uint8), ``brain`` (bool), ``gm``, ``wm``, ``csf`` (float32
        partial-volume fractions, zero outside the brain and on tumour labels), ``voxel_mm`` (shape (3,)),
        ``affine`` (4x4 float64, voxel to RAS+ mm of the output grid), ``grade``, ``synthetic_flair`` and
        ``synthetic_tumour`` (bool), ``seconds_segmentation`` (time spent in the tissue classifier).

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing, corrupt, non-3D or all-zero file, files on different grids, unknown labels, or a
        failed or implausible segmentation; the message names the file.
    """
    if grade is not None and grade not in GRADES:
        raise ValueError(f"grade must be one of {GRADES}, got {grade!r}")
    t1_image = load_nifti_volume(t1)
    others = {"flair": flair, "seg": seg}
    images = {
        name: load_nifti_volume(path, allow_zero=name == "seg") for name, path in others.items() if path is not None
    }
    for name, image in images.items():
        if not same_grid(t1_image, image):
            raise ValueError(
                f"{others[name]}: {name} is not on the grid of the T1 {t1} "
                f"(shape {image.shape} vs {t1_image.shape}, or a different affine)"
            )
    t1_data = resample_isotropic(t1_image, voxel_mm, order=1)
    brain = resample_isotropic(t1_image, voxel_mm, order=0, data=np.asarray(t1_image.dataobj) > 0) > 0.5
    t1_data = np.where(brain, np.clip(t1_data, 0.0, None), 0.0).astype(np.float32)
    if "seg" in images:
        mask = relabel(resample_isotropic(images["seg"], voxel_mm, order=0), label_map)
        labels = check_labels(mask, seg) * brain
    else:
        labels = np.zeros(t1_data.shape, dtype=np.uint8)

    start = time.perf_counter()
    fractions = segment_checked(t1_data, brain, labels, segmentation_method, t1)
    seconds_segmentation = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    if "seg" in images:
        necrosis = np.zeros(labels.shape, dtype=bool)
    else:
        grade = grade or GRADES[int(rng.integers(len(GRADES)))]
        labels, necrosis, _ = make_tumour(rng, grade, fractions["wm"], brain.astype(np.float32), voxel_mm)
        wm_signal = np.median(t1_data[fractions["wm"] > 0.9]) if (fractions["wm"] > 0.9).any() else t1_data.max()
        painted = tissue_image(fractions, labels, necrosis, T1_SIGNAL) * wm_signal / T1_SIGNAL["wm"]
        t1_data = np.where(labels > 0, painted, t1_data).astype(np.float32)
        fractions = {t: np.where(labels > 0, 0.0, fractions[t]).astype(np.float32) for t in TISSUES}
    if "flair" in images:
        flair_data = np.where(brain, np.clip(resample_isotropic(images["flair"], voxel_mm, order=1), 0, None), 0)
    else:
        flair_data = render_flair(rng, fractions, labels, necrosis, brain, voxel_mm) * np.percentile(t1_data[brain], 99)
    return {
        "t1": t1_data,
        "flair": flair_data.astype(np.float32),
        "labels": labels.astype(np.uint8),
        "brain": brain,
        **fractions,
        "voxel_mm": np.full(3, float(voxel_mm)),
        "affine": resampled_affine(t1_image, t1_data.shape),
        "grade": grade or grade_from_labels(labels),
        "synthetic_flair": "flair" not in images,
        "synthetic_tumour": "seg" not in images,
        "seconds_segmentation": seconds_segmentation,
    }
