"""One subject's anatomy from NIfTI files: a skull-stripped T1, and a FLAIR and tumour mask if there are any.

Volumes are reoriented to RAS+ and resampled to isotropic voxels (1 mm by default). A missing FLAIR is
synthesised from the tissue segmentation with the phantom's partial-volume FLAIR model; a missing tumour
mask is replaced by a synthetic tumour (drawn as in the phantom cohort) painted into the T1.
"""

from __future__ import annotations

import os

import numpy as np

from mrsisr.anatomy.nifti import load_nifti_volume, resample_isotropic, same_grid
from mrsisr.anatomy.phantom import FLAIR_SIGNAL, GRADES, T1_SIGNAL, make_tumour, tissue_image
from mrsisr.anatomy.segmentation import TISSUES, segment_tissues

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


def grade_from_labels(labels: np.ndarray) -> str:
    """Guess the grade of a tumour mask: HGG when an enhancing part (label 4) exists, else LGG."""
    return "HGG" if (labels == 4).sum() > 0.05 * max((labels > 0).sum(), 1) else "LGG"


def load_subject(
    t1: str | os.PathLike,
    flair: str | os.PathLike | None = None,
    seg: str | os.PathLike | None = None,
    voxel_mm: float = 1.0,
    grade: str | None = None,
    seed: int = 0,
    segmentation_method: str = "dipy_hmrf",
) -> dict:
    """Load one subject's skull-stripped T1 (and FLAIR, tumour mask) onto a RAS+ isotropic grid.

    Parameters
    ----------
    t1 : path-like
        Skull-stripped T1-weighted NIfTI, any orientation and voxel size.
    flair : path-like, optional
        FLAIR on the T1's grid; synthesised from the segmentation when missing.
    seg : path-like, optional
        Tumour mask with BraTS labels 0/1/2/4 on the T1's grid; a synthetic tumour when missing.
    voxel_mm : float
        Isotropic voxel size of the output grid.
    grade : {"LGG", "HGG"}, optional
        Tumour grade; guessed from the mask (label 4 present: HGG) when not given.
    seed : int
        Seed of the synthetic tumour.
    segmentation_method : str
        Classifier used when a FLAIR or tumour must be synthesised.

    Returns
    -------
    dict
        ``t1``, ``flair`` (float32), ``labels`` (uint8), ``brain`` (bool), ``voxel_mm`` (shape (3,)),
        ``grade``, ``synthetic_flair`` and ``synthetic_tumour`` (bool); when the tissue had to be
        segmented here also ``gm``, ``wm``, ``csf``.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing, corrupt, non-3D or all-zero file, files on different grids, or unknown labels;
        the message names the file.
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
        labels = check_labels(resample_isotropic(images["seg"], voxel_mm, order=0), seg) * brain
    else:
        labels = np.zeros(t1_data.shape, dtype=np.uint8)

    subject = {"brain": brain, "voxel_mm": np.full(3, float(voxel_mm))}
    fractions = None
    if "seg" not in images or "flair" not in images:
        fractions = segment_tissues(t1_data, brain, labels, method=segmentation_method)
    if "seg" not in images:
        rng = np.random.default_rng(seed)
        grade = grade or GRADES[int(rng.integers(len(GRADES)))]
        labels, necrosis, _ = make_tumour(rng, grade, fractions["wm"], brain.astype(np.float32), voxel_mm)
        wm_signal = np.median(t1_data[fractions["wm"] > 0.9]) if (fractions["wm"] > 0.9).any() else t1_data.max()
        painted = tissue_image(fractions, labels, necrosis, T1_SIGNAL) * wm_signal / T1_SIGNAL["wm"]
        t1_data = np.where(labels > 0, painted, t1_data).astype(np.float32)
        fractions = {t: np.where(labels > 0, 0.0, fractions[t]).astype(np.float32) for t in TISSUES}
    else:
        necrosis = np.zeros(labels.shape, dtype=bool)
    if "flair" in images:
        flair_data = np.where(brain, np.clip(resample_isotropic(images["flair"], voxel_mm, order=1), 0, None), 0)
    else:
        flair_data = tissue_image(fractions, labels, necrosis, FLAIR_SIGNAL) * brain * np.percentile(t1_data[brain], 99)
    subject.update(
        t1=t1_data,
        flair=flair_data.astype(np.float32),
        labels=labels.astype(np.uint8),
        grade=grade or grade_from_labels(labels),
        synthetic_flair="flair" not in images,
        synthetic_tumour="seg" not in images,
    )
    if fractions is not None:
        subject.update(fractions)
    return subject
