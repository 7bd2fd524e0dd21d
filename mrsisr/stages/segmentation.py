"""Stage ``anatomy`` (notebook 01): build the cohort's anatomy, segment it, score it, cache it.

Each subject is built and segmented in a worker process from its own seed (spawned from the study seed
with :class:`numpy.random.SeedSequence`), so the results do not depend on the number of workers. The
artifacts (``subjects.csv``, ``<subject>.npz``, ``dice.csv``; see CONTRIBUTING.md) go to a folder keyed
by the stage's parameters and are reused when a later run asks for the same parameters.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mrsisr.anatomy.cohort import SubjectSpec, build_subject, cohort_specs
from mrsisr.anatomy.phantom import load_templates
from mrsisr.study import cache
from mrsisr.study.atomic import save_json, save_npz, save_text

STAGE = "anatomy"
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
    mrsisr.study.cache.StageOutput
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
