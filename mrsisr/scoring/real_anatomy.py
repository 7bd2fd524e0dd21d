"""Test maps synthesised from real anatomy, with the real FLAIR as guide: does the network transfer?

The study trains and tests on phantoms. Here real glioma MRI (any BraTS layout, or T1 files found by a
glob with FLAIR and tumour mask beside them) goes through the same anatomy and synthesis code as the
study's cohort (:mod:`mrsisr.anatomy.cohort`, :func:`mrsisr.stages.synthesis.subject_maps`), with the
run's own segmentation and synthesis parameters, so that the maps differ from the test split only in the
anatomy they come from. The guide is the case's own FLAIR, which no map was rendered from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mrsisr.anatomy.cohort import build_subject, cohort_specs
from mrsisr.maps.synthesis import KINDS, normalise_maps
from mrsisr.stages.synthesis import SPLITS, lowres_inputs, subject_maps

GLOB_CHARACTERS = "*?["


def real_cohort_parameters(root: str, segmentation: Mapping[str, Any]) -> dict[str, Any]:
    """The segmentation parameters of a cohort read from ``root``: a BraTS folder, or a glob of T1 files."""
    is_glob = any(character in root for character in GLOB_CHARACTERS)
    return dict(segmentation) | {
        "anatomy_source": "nifti" if is_glob else "brats",
        "brats_root": "" if is_glob else root,
        "nifti_glob": root if is_glob else "",
        "n_subjects": 0,
    }


def real_anatomy_split(
    root: str,
    segmentation: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    n_slices: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Build test maps from every real case under ``root``, as the study builds its test split.

    Parameters
    ----------
    root : str
        A folder of BraTS cases (any release), or a glob of T1 NIfTI files.
    segmentation, synthesis : mapping
        The run's segmentation and synthesis parameters (anatomy grid, classifier, seed; map grid,
        low-resolution method and size).
    n_slices : int
        Slices per case (each gives the five map kinds).
    progress : bool
        Show a progress bar over the cases.

    Returns
    -------
    lr, guide, hr : ndarray
        ``(N, 32, 32)`` inputs, ``(N, 128, 128)`` real FLAIR guides and normalised truths.
    meta : DataFrame
        ``subject, grade, slice, kind, scale`` per map.

    Raises
    ------
    ValueError
        When ``root`` holds no case, or no case has a slice whose tumour rises above the slice's FLAIR mean.
    """
    params = real_cohort_parameters(root, segmentation)
    specs = cohort_specs(params)
    seeds = np.random.SeedSequence([int(synthesis["seed"]), 3]).spawn(len(specs))
    hr, guides, rows = [], [], []
    for spec, seed in zip(tqdm(specs, desc="real anatomy", disable=not progress), seeds, strict=True):
        arrays, row = build_subject(spec, float(params["anatomy_voxel_mm"]), params["segmentation_method"])
        rng = np.random.default_rng(seed)
        maps, guide, chosen = subject_maps(arrays, row["grade"], (n_slices, n_slices), synthesis, rng)
        for s, k in enumerate(chosen):
            for kind in KINDS:
                hr.append(maps[kind][s])
                guides.append(guide[s])
                rows.append({"subject": spec.subject, "grade": row["grade"], "slice": int(k), "kind": kind})
    if not rows:
        raise ValueError(f"real_eval_root {root}: no case has a slice whose tumour rises above the slice's FLAIR mean")
    truth, scale = normalise_maps(np.stack(hr))
    meta = pd.DataFrame(rows).assign(scale=scale)
    lowres = lowres_inputs(truth, synthesis, stream=len(SPLITS))
    return lowres, np.stack(guides).astype(np.float32), truth, meta
