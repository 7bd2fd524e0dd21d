"""Partial-volume tissue segmentation (GM, WM, CSF) of a skull-stripped T1 with an HMRF/EM classifier.

The classifier is dipy's ``TissueClassifierHMRF`` (Zhang et al. 2001, the algorithm of FSL FAST): a
Gaussian mixture of the T1 intensities with a Potts Markov random field prior, fitted by ICM and EM,
returning per-class posterior probabilities that serve as partial-volume fractions. Tumour voxels are
kept out of the tissue classes: together with the background they form a fourth, near-zero class, so
they neither bias the tissue means nor receive tissue fractions. The background and tumour carry a
tiny deterministic jitter because dipy 1.12 returns NaN for a class of exactly constant intensity
(dipy issue 3943).
"""

from __future__ import annotations

import numpy as np
from dipy.segment.tissue import TissueClassifierHMRF

METHODS = ("dipy_hmrf",)
TISSUES = ("csf", "gm", "wm")  # in order of increasing T1 signal


def _bounding_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def segment_tissues(
    t1: np.ndarray,
    brain: np.ndarray,
    labels: np.ndarray | None = None,
    method: str = "dipy_hmrf",
    beta: float = 0.6,
    max_iter: int = 5,
) -> dict[str, np.ndarray]:
    """Return partial-volume GM, WM and CSF fractions of a skull-stripped T1 volume.

    Parameters
    ----------
    t1 : numpy.ndarray
        T1-weighted volume (X, Y, Z), any positive scale.
    brain : numpy.ndarray of bool
        Brain mask, same shape.
    labels : numpy.ndarray, optional
        BraTS tumour labels (0 = no tumour); voxels with a label are excluded from the tissue classes.
    method : {"dipy_hmrf"}
        Classifier.
    beta : float
        Weight of the Markov random field (smoothness) prior.
    max_iter : int
        EM iterations at most.

    Returns
    -------
    dict
        ``gm``, ``wm``, ``csf``: float32 fractions summing to 1 in the brain outside the tumour, 0 elsewhere.

    Raises
    ------
    ValueError
        For an unknown method, mismatched shapes or an empty brain mask.
    """
    if method not in METHODS:
        raise ValueError(f"unknown segmentation_method {method!r}; valid methods: {', '.join(METHODS)}")
    if t1.ndim != 3 or brain.shape != t1.shape or (labels is not None and labels.shape != t1.shape):
        shapes = f"t1 {t1.shape}, brain {brain.shape}" + (f", labels {labels.shape}" if labels is not None else "")
        raise ValueError(f"segmentation needs 3D arrays of one shape, got {shapes}")
    tissue = brain.astype(bool) & (labels == 0 if labels is not None else True)
    if tissue.sum() < 100:
        raise ValueError(f"brain mask has only {int(tissue.sum())} tissue voxels: nothing to segment")

    box = _bounding_box(tissue)
    inside = tissue[box]
    image = t1[box].astype(np.float64)
    image = image / np.percentile(image[inside], 99.5)
    # Background and tumour: a near-zero class with a tiny deterministic jitter (dipy issue 3943).
    jitter = np.random.default_rng(0).uniform(0.0, 1e-3, size=image.shape)
    image = np.where(inside, image, jitter)

    classifier = TissueClassifierHMRF(verbose=False)
    _, _, pve = classifier.classify(image, len(TISSUES) + 1, beta, tolerance=1e-5, max_iter=max_iter)
    pve = np.nan_to_num(pve[..., 1:])  # class 0 is the near-zero background class
    means = [(pve[..., k] * image)[inside].sum() / max(pve[..., k][inside].sum(), 1e-9) for k in range(len(TISSUES))]
    order = np.argsort(means)
    total = pve.sum(axis=-1)
    total[total == 0] = 1.0
    out = {}
    for name, k in zip(TISSUES, order, strict=True):
        full = np.zeros(t1.shape, dtype=np.float32)
        full[box] = np.where(inside, pve[..., k] / total, 0.0)
        out[name] = full
    return out


def dice_scores(estimate: dict[str, np.ndarray], truth: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float]:
    """Dice coefficient of each tissue's hard labels (arg-max of the fractions) inside ``mask``.

    Parameters
    ----------
    estimate, truth : dict
        ``gm``, ``wm``, ``csf`` fraction volumes of one shape.
    mask : numpy.ndarray of bool
        Voxels to score (the brain outside the tumour).

    Returns
    -------
    dict
        ``dice_gm``, ``dice_wm``, ``dice_csf``; NaN for a class absent from both.
    """
    est = np.argmax(np.stack([estimate[t] for t in TISSUES]), axis=0)[mask]
    ref = np.argmax(np.stack([truth[t] for t in TISSUES]), axis=0)[mask]
    scores = {}
    for k, name in enumerate(TISSUES):
        a, b = est == k, ref == k
        denom = a.sum() + b.sum()
        scores[f"dice_{name}"] = float(2.0 * (a & b).sum() / denom) if denom else float("nan")
    return scores
