"""Stage ``anatomy`` (notebook 01): build the cohort's anatomy, segment it, score it, cache it.

Each subject is built and segmented in a worker process from its own seed (spawned from the study seed
with :class:`numpy.random.SeedSequence`), so the results do not depend on the number of workers. The
artifacts (``subjects.csv``, ``<subject>.npz``, ``dice.csv``; see CONTRIBUTING.md) go to a folder keyed
by the stage's parameters and are reused when a later run asks for the same parameters.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mrsisr import cache
from mrsisr.anatomy import load_subject
from mrsisr.atomic import save_json, save_npz, save_text
from mrsisr.brats import find_cases
from mrsisr.phantom import load_templates, make_phantom
from mrsisr.segmentation import TISSUES, dice_scores, segment_tissues

STAGE = "anatomy"
SOURCES = ("phantom", "brats", "nifti")
PARAMS = (
    "seed",
    "anatomy_source",
    "brats_root",
    "nifti_glob",
    "n_subjects",
    "hgg_fraction",
    "segmentation_method",
    "anatomy_voxel_mm",
)


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
            raise ValueError("anatomy_source 'brats' needs brats_root, the BraTS 2020 training folder")
        cases = find_cases(params["brats_root"], n)
        files = [(c.subject, c.grade, str(c.t1), str(c.flair), str(c.seg)) for c in cases]
    elif source == "nifti":
        pattern = params["nifti_glob"]
        if not pattern:
            raise ValueError("anatomy_source 'nifti' needs nifti_glob, a glob of T1 NIfTI files")
        t1s = [Path(p) for p in sorted(glob.glob(pattern))]
        if not t1s:
            raise ValueError(f"nifti_glob {pattern!r} matches no files")
        t1s = t1s[: n or None]
        files = [(_subject_id(p), None, str(p), _nifti_companion(p, "flair"), _nifti_companion(p, "seg")) for p in t1s]
    else:
        if n < 1:
            raise ValueError(f"a phantom cohort needs n_subjects >= 1, got {n}")
        files = [(f"phantom_{i:03d}", None, "", "", "") for i in range(n)]
    sequence = np.random.SeedSequence(int(params["seed"]))
    grades = assign_grades(len(files), float(params["hgg_fraction"]), np.random.default_rng(sequence.spawn(1)[0]))
    seeds = [int(child.generate_state(1)[0]) for child in sequence.spawn(len(files))]
    specs = []
    for (subject, grade, t1, flair, seg), drawn, seed in zip(files, grades, seeds, strict=True):
        # a known grade (BraTS) wins; a given tumour mask tells its own grade; otherwise the drawn one
        specs.append(SubjectSpec(subject, source, grade or (None if seg else drawn), seed, t1, flair, seg))
    return specs


def build_subject(spec: SubjectSpec, voxel_mm: float, method: str) -> tuple[dict, dict]:
    """Build, segment and score one subject.

    Returns
    -------
    arrays : dict
        The arrays of ``<subject>.npz``.
    row : dict
        ``subject``, ``grade``, ``source``, timings and (phantoms) Dice scores.
    """
    start = time.perf_counter()
    if spec.source == "phantom":
        subject = make_phantom(spec.seed, spec.grade, voxel_mm=voxel_mm)
    else:
        subject = load_subject(
            spec.t1,
            spec.flair or None,
            spec.seg or None,
            voxel_mm=voxel_mm,
            grade=spec.grade,
            seed=spec.seed,
            segmentation_method=method,
        )
    built = time.perf_counter()
    fractions = segment_tissues(subject["t1"], subject["brain"], subject["labels"], method=method)
    segmented = time.perf_counter()
    arrays = {k: subject[k] for k in ("t1", "flair", "labels", "brain", "voxel_mm")} | fractions
    row = {
        "subject": spec.subject,
        "grade": subject["grade"],
        "source": spec.source,
        "seconds_anatomy": built - start,
        "seconds_segmentation": segmented - built,
    }
    if spec.source == "phantom":
        truth = {t: subject[f"{t}_true"] for t in TISSUES}
        arrays |= {f"{t}_true": truth[t] for t in TISSUES}
        row |= dice_scores(fractions, truth, subject["brain"] & (subject["labels"] == 0))
    return arrays, row


def _build_and_save(job: tuple[SubjectSpec, float, str, str]) -> dict:
    spec, voxel_mm, method, folder = job
    arrays, row = build_subject(spec, voxel_mm, method)
    save_npz(Path(folder) / f"{spec.subject}.npz", **arrays)
    return row


def stage_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that key the ``anatomy`` cache (taken from a full profile)."""
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"anatomy stage parameters missing: {', '.join(missing)}")
    return {name: params[name] for name in PARAMS}


def run_anatomy_stage(
    run_dir: str | os.PathLike, params: Mapping[str, Any], workers: int = 2, progress: bool = True
) -> cache.StageOutput:
    """Build (or reuse) the ``anatomy`` stage output of ``params`` under ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        The profile's run folder (``runs/<profile>``).
    params : mapping
        Profile parameters; those in :data:`PARAMS` are used.
    workers : int
        Worker processes (results do not depend on it).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    mrsisr.cache.StageOutput
        The complete, published output folder.
    """
    keyed = stage_params(params)
    output = cache.stage_output(run_dir, STAGE, keyed)
    if not output.complete:
        specs = cohort_specs(keyed)
        voxel_mm, method = float(keyed["anatomy_voxel_mm"]), keyed["segmentation_method"]
        jobs = [(spec, voxel_mm, method, str(output.path)) for spec in specs]
        start = time.perf_counter()
        if keyed["anatomy_source"] == "phantom":
            load_templates(voxel_mm)  # read once here; forked workers inherit the cached templates
        if workers > 1:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                rows = list(tqdm(pool.map(_build_and_save, jobs), total=len(jobs), desc=STAGE, disable=not progress))
        else:
            rows = [_build_and_save(job) for job in tqdm(jobs, desc=STAGE, disable=not progress)]
        seconds = time.perf_counter() - start
        table = pd.DataFrame(rows)
        save_text(output.path / "subjects.csv", table[["subject", "grade", "source"]].to_csv(index=False))
        dice_columns = ["subject"] + [f"dice_{t}" for t in ("gm", "wm", "csf")]
        dice = table[dice_columns] if "dice_gm" in table else pd.DataFrame(columns=dice_columns)
        save_text(output.path / "dice.csv", dice.to_csv(index=False))
        timing = table[["subject", "seconds_anatomy", "seconds_segmentation"]]
        save_text(output.path / "timing.csv", timing.to_csv(index=False))
        save_json(output.path / "stage.json", {"seconds": seconds, "workers": workers, "subjects": len(rows)})
        save_json(output.path / "specs.json", [asdict(spec) for spec in specs])
        output.mark_complete()
    cache.publish(run_dir, output, exports=("subjects.csv", "dice.csv"))
    return output


def read_subject(output: cache.StageOutput | str | os.PathLike, subject: str) -> dict[str, np.ndarray]:
    """Load the arrays of one subject of an ``anatomy`` output (a StageOutput or its folder)."""
    folder = output.path if isinstance(output, cache.StageOutput) else Path(output)
    path = folder / f"{subject}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such subject in the anatomy stage output")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def dice_summary(output: cache.StageOutput) -> pd.DataFrame:
    """Mean, SD, minimum and maximum over the cohort of each tissue's Dice (rows GM, WM, CSF)."""
    dice = pd.read_csv(output.path / "dice.csv")
    if dice.empty:
        raise ValueError(f"{output.path / 'dice.csv'} is empty: Dice needs the phantom's ground truth")
    table = dice[[f"dice_{t}" for t in ("gm", "wm", "csf")]].agg(["mean", "std", "min", "max"]).T
    table.index = ["GM", "WM", "CSF"]
    return table.rename(columns={"std": "sd"})


def figure_slice(output: cache.StageOutput) -> tuple[str, int]:
    """The subject and axial slice of Figure 1: the first subject's slice with the largest tumour area."""
    subject = pd.read_csv(output.path / "subjects.csv")["subject"].iloc[0]
    labels = read_subject(output, subject)["labels"]
    return subject, int(np.argmax((labels > 0).sum(axis=(0, 1))))


def plot_anatomy_slice(arrays: Mapping[str, np.ndarray], k: int):
    """Draw FLAIR, GM, WM and CSF of axial slice ``k`` (Figure 1, top row); returns the figure.

    Slices are shown with the subject's right on the image's right (x left to right, anterior up).
    """
    import matplotlib.pyplot as plt

    panels = [("FLAIR", "flair", "gray", None), ("GM", "gm", "magma", 1), ("WM", "wm", "magma", 1)]
    panels.append(("CSF", "csf", "magma", 1))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6), layout="constrained")
    for ax, (title, key, cmap, vmax) in zip(axes, panels, strict=True):
        image = ax.imshow(arrays[key][:, :, k].T, origin="lower", cmap=cmap, vmin=0, vmax=vmax)
        ax.set_title(title)
        ax.set_axis_off()
        if vmax:
            fig.colorbar(image, ax=ax, shrink=0.8, label="fraction")
    return fig
