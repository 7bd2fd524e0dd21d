"""Stage ``segmentation`` (notebook 01): build the cohort's anatomy, segment it, cache it.

Each subject is built and segmented in a worker process from its own seed (:mod:`mrsisr.anatomy.cohort`),
so the results do not depend on the number of workers; workers die with the stage's process. The
artifacts (``subjects.csv``, ``<subject>.npz``, ``dice.csv``, ``timing.csv``, ``stage.json``) go to a
folder keyed by the stage's parameters and are reused when a later run asks for the same parameters.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel
from tqdm import tqdm

from mrsisr.anatomy.cohort import SubjectSpec, build_subject, cohort_specs
from mrsisr.anatomy.phantom import FlairMisregistration, load_templates
from mrsisr.stages import get_stage
from mrsisr.study import cache
from mrsisr.study.atomic import save_json, save_npz, save_text

STAGE = get_stage("segmentation")
CACHE_VERSION = 3  # 3: three HMRF iterations instead of five
TISSUE_COLUMNS = ("gm", "wm", "csf")
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SegmentationResult:
    """What notebook 01 shows.

    Attributes
    ----------
        The stage's cache folder.
    subjects : DataFrame
        One row per subject: ``subject, grade, source`` and the non-tumour brain fractions when recorded.
    dice : DataFrame or None
        Mean, SD, minimum and maximum Dice per tissue (phantoms only: real anatomy has no ground truth).
    timing : DataFrame
        Seconds per subject to build the anatomy and to segment it.
    seconds, workers : float, int
        Wall time of the run that built the cache, and its worker processes.
    figure_subject, figure_slice : str, int
        Figure 1's subject and axial slice (of the first subject with a tumour, its slice with the largest
        tumour area).
    figure_arrays : dict
        That subject's arrays.
    """

    output: cache.StageOutput
    subjects: pd.DataFrame
    dice: pd.DataFrame | None
    timing: pd.DataFrame
    seconds: float
    workers: int
    figure_subject: str
    figure_slice: int
    figure_arrays: dict

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        values = {
            "n_subjects": len(self.subjects),
            "sources": ", ".join(sorted(set(self.subjects["source"]))),
            "seconds": self.seconds,
            "figure_subject": self.figure_subject,
            "figure_slice": self.figure_slice,
        }
        for tissue in TISSUE_COLUMNS:  # NaN for real anatomy, which has no ground truth
            mean = np.nan if self.dice is None else self.dice.loc[tissue.upper(), "mean"]
            values[f"dice_{tissue}_mean"] = float(mean)
        return values


def run(run_dir: str | os.PathLike, params: BaseModel, workers: int = 2, progress: bool = True) -> SegmentationResult:
    """Build (or reuse) the segmentation output of ``params`` under ``run_dir`` and publish it.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    Parameters
    ----------
    workers : int
        Worker processes (results do not depend on it).
    progress : bool
        Show a progress bar.
    """
    output = cache.open_stage(run_dir, STAGE, params.model_dump(), CACHE_VERSION)
    if not output.complete:
        _build(output, params.model_dump(), workers, progress)
        output.mark_complete()
    cache.publish(run_dir, output, exports=("subjects.csv", "dice.csv"))
    return read_result(output)


def _die_with_parent() -> None:
    """Worker initializer: the kernel kills this worker when its parent dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: orphans are then possible after a kill -9
        return
    if os.getppid() == 1:
        os._exit(1)


def _build_and_save(job: tuple[SubjectSpec, float, str, FlairMisregistration, str]) -> dict:
    spec, voxel_mm, method, misregistration, folder = job
    arrays, row = build_subject(spec, voxel_mm, method, misregistration)
    save_npz(Path(folder) / f"{spec.subject}.npz", **arrays)
    return row


def _build(output: cache.StageOutput, params: dict, workers: int, progress: bool) -> None:
    specs = cohort_specs(params)
    voxel_mm, method = float(params["anatomy_voxel_mm"]), params["segmentation_method"]
    misregistration = FlairMisregistration(float(params["flair_shift_mm"]), float(params["flair_rotation_deg"]))
    jobs = [(spec, voxel_mm, method, misregistration, str(output.path)) for spec in specs]
    start = time.perf_counter()
    if params["anatomy_source"] == "phantom":
        load_templates(voxel_mm)  # read once here; forked workers inherit the cached templates
    bar = {"total": len(jobs), "desc": STAGE.name, "disable": not progress}
    if workers > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent) as pool:
            rows = list(tqdm(pool.map(_build_and_save, jobs), **bar))
    else:
        rows = [_build_and_save(job) for job in tqdm(jobs, **bar)]
    table = pd.DataFrame(rows)
    subject_columns = ["subject", "grade", "source"] + [c for c in table if c.startswith("frac_")]
    save_text(output.path / "subjects.csv", table[subject_columns].to_csv(index=False))
    dice_columns = ["subject"] + [f"dice_{t}" for t in TISSUE_COLUMNS]
    dice = table[dice_columns] if "dice_gm" in table else pd.DataFrame(columns=dice_columns)
    save_text(output.path / "dice.csv", dice.to_csv(index=False))
    timing = table[["subject", "seconds_anatomy", "seconds_segmentation"]]
    save_text(output.path / "timing.csv", timing.to_csv(index=False))
    seconds = time.perf_counter() - start
    save_json(output.path / "stage.json", {"seconds": seconds, "workers": workers, "subjects": len(rows)})
    save_json(output.path / "specs.json", [asdict(spec) for spec in specs])


def read_result(output: cache.StageOutput) -> SegmentationResult:
    """Read a complete segmentation output into the result its notebook shows."""
    subjects = pd.read_csv(output.path / "subjects.csv", dtype={"subject": str})
    stage = cache.read_json(output.path / "stage.json")
    for subject in subjects["subject"]:  # the first subject with a tumour
        arrays = read_subject(output, subject)
        if arrays["labels"].any():
            break
    k = int(np.argmax((arrays["labels"] > 0).sum(axis=(0, 1))))
    return SegmentationResult(
        output=output,
        subjects=subjects,
        dice=dice_summary(pd.read_csv(output.path / "dice.csv")),
        timing=pd.read_csv(output.path / "timing.csv", dtype={"subject": str}),
        seconds=float(stage["seconds"]),
        workers=int(stage["workers"]),
        figure_subject=subject,
        figure_slice=k,
        figure_arrays=arrays,
    )


def read_subject(output: cache.StageOutput | str | os.PathLike, subject: str) -> dict[str, np.ndarray]:
    """Load the arrays of one subject of a segmentation output (a StageOutput or its folder)."""
    folder = output.path if isinstance(output, cache.StageOutput) else Path(output)
    path = folder / f"{subject}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such subject in the segmentation stage output")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def dice_summary(dice: pd.DataFrame) -> pd.DataFrame | None:
    """Mean, SD, minimum and maximum over the cohort of each tissue's Dice (rows GM, WM, CSF); None without any."""
    if dice.empty:
        return None
    table = dice[[f"dice_{t}" for t in TISSUE_COLUMNS]].agg(["mean", "std", "min", "max"]).T
    table.index = [t.upper() for t in TISSUE_COLUMNS]
    return table.rename(columns={"std": "sd"})
