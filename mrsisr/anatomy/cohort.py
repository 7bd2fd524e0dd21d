"""The cohort: which subjects a study has, and how one subject's anatomy is built and segmented.

A subject comes from the phantom generator, from a BraTS case or from a T1 (with FLAIR and tumour mask
when there are any) found by a glob. Each subject gets its own seed, spawned from the study seed with
:class:`numpy.random.SeedSequence`, so that a subject's result does not depend on which worker builds it.
"""

from __future__ import annotations

import glob
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrsisr.anatomy.brats import find_cases
from mrsisr.anatomy.phantom import DEFAULT_MISREGISTRATION, FlairMisregistration, make_phantom
from mrsisr.anatomy.segmentation import TISSUES, brain_fractions, dice_scores
from mrsisr.anatomy.subject import load_subject, segment_checked

SOURCES = ("phantom", "brats", "nifti")


@dataclass(frozen=True)
class SubjectSpec:
    """What is needed to build one subject in a worker."""

    subject: str
    source: str
    grade: str | None
    seed: int
    t1: str = ""
    flair: str = ""
    seg: str = ""
    label_map: tuple[tuple[int, int], ...] = ()  # mask values to rename on loading (BraTS 2023+: 3 -> 4)


def assign_grades(n_subjects: int, hgg_fraction: float, rng: np.random.Generator) -> list[str]:
    """Return ``n_subjects`` grades, ``round(hgg_fraction * n)`` of them HGG, in random order."""
    if not 0.0 <= hgg_fraction <= 1.0:
        raise ValueError(f"hgg_fraction must lie in [0, 1], got {hgg_fraction}")
    n_hgg = int(round(hgg_fraction * n_subjects))
    return list(rng.permutation(["HGG"] * n_hgg + ["LGG"] * (n_subjects - n_hgg)))


def _nifti_companion(t1: Path, kind: str) -> str:
    """``sub01_T1.nii.gz`` -> ``sub01_flair.nii.gz`` if that file exists, else ``""``."""
    name = re.sub(r"t1(?!.*t1)", kind, t1.name, flags=re.IGNORECASE)
    path = t1.with_name(name)
    return str(path) if name != t1.name and path.is_file() else ""


def _subject_id(t1: Path) -> str:
    """``sub01_T1.nii.gz`` -> ``sub01``."""
    stem = re.sub(r"\.nii(\.gz)?$", "", t1.name)
    return re.sub(r"[_-]?t1(?!.*t1)", "", stem, flags=re.IGNORECASE) or stem


def cohort_specs(params: Mapping[str, Any]) -> list[SubjectSpec]:
    """List the subjects of the cohort that ``params`` describe, each with its own seed.

    Raises
    ------
    ValueError
        For an unknown ``anatomy_source``, a missing ``brats_root``/``nifti_glob``, or no subjects.
    """
    source = params["anatomy_source"]
    if source not in SOURCES:
        raise ValueError(f"unknown anatomy_source {source!r}; valid sources: {', '.join(SOURCES)}")
    n = int(params["n_subjects"])
    if source == "brats":
        if not params["brats_root"]:
            raise ValueError("anatomy_source 'brats' needs brats_root, a folder of BraTS cases (any release)")
        cases = find_cases(params["brats_root"], n)
        files = [(c.subject, c.grade, str(c.t1), str(c.flair), str(c.seg), c.label_map) for c in cases]
    elif source == "nifti":
        pattern = params["nifti_glob"]
        if not pattern:
            raise ValueError("anatomy_source 'nifti' needs nifti_glob, a glob of T1 NIfTI files")
        t1s = [Path(p) for p in sorted(glob.glob(pattern))]
        if not t1s:
            raise ValueError(f"nifti_glob {pattern!r} matches no files")
        t1s = t1s[: n or None]
        files = [
            (_subject_id(p), None, str(p), _nifti_companion(p, "flair"), _nifti_companion(p, "seg"), ()) for p in t1s
        ]
    else:
        if n < 1:
            raise ValueError(f"a phantom cohort needs n_subjects >= 1, got {n}")
        files = [(f"phantom_{i:03d}", None, "", "", "", ()) for i in range(n)]
    sequence = np.random.SeedSequence(int(params["seed"]))
    grades = assign_grades(len(files), float(params["hgg_fraction"]), np.random.default_rng(sequence.spawn(1)[0]))
    seeds = [int(child.generate_state(1)[0]) for child in sequence.spawn(len(files))]
    specs = []
    for (subject, grade, t1, flair, seg, label_map), drawn, seed in zip(files, grades, seeds, strict=True):
        # a release's grade (BraTS) wins; a given tumour mask tells its own grade; otherwise the drawn one
        spec_grade = grade or (None if seg else drawn)
        specs.append(SubjectSpec(subject, source, spec_grade, seed, t1, flair, seg, label_map))
    return specs


def grade_source(spec: SubjectSpec) -> str:
    """Where a subject's grade comes from: ``"release"`` (BraTS), ``"labels"`` (its tumour mask) or ``"drawn"``."""
    if spec.grade is None:
        return "labels"
    return "release" if spec.source == "brats" else "drawn"


def build_subject(
    spec: SubjectSpec,
    voxel_mm: float,
    method: str,
    flair_misregistration: FlairMisregistration = DEFAULT_MISREGISTRATION,
) -> tuple[dict, dict]:
    """Build, segment (once) and score one subject.

    ``flair_misregistration`` bounds a phantom FLAIR's motion against its maps' anatomy (real cases keep
    their own FLAIR).

    Returns
    -------
    arrays : dict
        The arrays of ``<subject>.npz``: ``t1``, ``flair``, ``labels``, ``brain``, ``voxel_mm``, ``gm``,
        ``wm``, ``csf``, ``affine`` (4x4 voxel to RAS+ mm), and for phantoms ``gm_true``, ``wm_true``,
        ``csf_true``.
    row : dict
        ``subject``, ``grade``, ``grade_source``, ``source``, ``seconds_anatomy``, ``seconds_segmentation``,
        the non-tumour brain shares ``frac_gm``, ``frac_wm``, ``frac_csf``, and for phantoms ``dice_gm``,
        ``dice_wm``, ``dice_csf``.

    Raises
    ------
    ValueError
        When the segmentation fails or is implausible (naming the T1 file, or the phantom and its seed).
    """
    start = time.perf_counter()
    if spec.source == "phantom":
        subject = make_phantom(spec.seed, spec.grade, voxel_mm, flair_misregistration)
        built = time.perf_counter()
        source = f"{spec.subject} (phantom, seed {spec.seed})"
        fractions = segment_checked(subject["t1"], subject["brain"], subject["labels"], method, source)
        seconds = {"seconds_anatomy": built - start, "seconds_segmentation": time.perf_counter() - built}
    else:
        subject = load_subject(
            spec.t1,
            spec.flair or None,
            spec.seg or None,
            voxel_mm=voxel_mm,
            grade=spec.grade,
            seed=spec.seed,
            segmentation_method=method,
            label_map=spec.label_map,
        )
        fractions = {t: subject[t] for t in TISSUES}
        segmentation = subject["seconds_segmentation"]
        seconds = {"seconds_anatomy": time.perf_counter() - start - segmentation, "seconds_segmentation": segmentation}
    tissue = subject["brain"] & (subject["labels"] == 0)
    arrays = {k: subject[k] for k in ("t1", "flair", "labels", "brain", "voxel_mm", "affine")} | fractions
    row = {
        "subject": spec.subject,
        "grade": subject["grade"],
        "grade_source": grade_source(spec),
        "source": spec.source,
        **seconds,
    }
    row |= {f"frac_{t}": share for t, share in brain_fractions(fractions, tissue).items()}
    if spec.source == "phantom":
        truth = {t: subject[f"{t}_true"] for t in TISSUES}
        arrays |= {f"{t}_true": truth[t] for t in TISSUES}
        row |= dice_scores(fractions, truth, tissue)
    return arrays, row
