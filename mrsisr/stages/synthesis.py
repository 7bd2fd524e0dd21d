"""Stage ``dataset`` (notebook 02): metabolite maps of selected slices, low-resolution inputs, split.

For each subject of the ``anatomy`` stage: the synthesis (:mod:`mrsisr.maps.synthesis`) on the whole
volume, the paper's slice selection (:mod:`mrsisr.maps.slices`), one 128x128 slab per selected slice for each
of the five map kinds, each normalised to [0, 1] by its maximum, the 32x32 input (:mod:`mrsisr.maps.lowres`)
and the FLAIR guide of the same slab. Subjects are split into train / val / test before any map is
made, so no subject contributes to two splits. Every random draw comes from a per-subject seed spawned
from the study seed: the same parameters give the same arrays bit for bit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mrsisr.maps.lowres import LOWRES_METHODS, make_lowres
from mrsisr.maps.slices import MapGrid, brain_centre, candidate_slices, choose_slices, extract_slab, slab_voxels
from mrsisr.maps.synthesis import KINDS, synthesize_maps
from mrsisr.stages.segmentation import read_subject
from mrsisr.study import cache
from mrsisr.study.atomic import save_json, save_npy, save_text

STAGE = "dataset"
SPLITS: tuple[str, ...] = ("train", "val", "test")
PARAMS = (
    "seed",
    "n_test_subjects",
    "val_fraction",
    "slices_min",
    "slices_max",
    "test_slices_per_subject",
    "map_size",
    "lr_size",
    "fov_mm",
    "slice_thickness_mm",
    "lowres_method",
)
META_COLUMNS = ("subject", "grade", "slice", "kind", "scale")
REQUIRED_ARRAYS = ("flair", "labels", "brain", "gm", "wm", "csf", "voxel_mm")


def stage_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that key the ``dataset`` cache, checked."""
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"dataset stage parameters missing: {', '.join(missing)}")
    keyed = {name: params[name] for name in PARAMS}
    if keyed["lowres_method"] not in LOWRES_METHODS:
        raise ValueError(f"unknown lowres_method {keyed['lowres_method']!r}; valid: {', '.join(LOWRES_METHODS)}")
    if not 0.0 <= float(keyed["val_fraction"]) < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {keyed['val_fraction']}")
    if keyed["map_size"] % keyed["lr_size"]:
        raise ValueError(f"map_size {keyed['map_size']} is not a multiple of lr_size {keyed['lr_size']}")
    return keyed


def split_subjects(
    subjects: pd.DataFrame, n_test: int, val_fraction: float, rng: np.random.Generator
) -> dict[str, list[str]]:
    """Assign whole subjects to train, val and test.

    ``n_test`` subjects, drawn at random, form the test split. Of the rest, a random ``val_fraction`` of
    the subjects (at least one when the fraction is positive and two or more remain) form the
    validation split; with 5-10 slices per subject this gives about that share of the maps.
    """
    names = list(subjects["subject"])
    if n_test >= len(names):
        raise ValueError(f"n_test_subjects={n_test} leaves no training subject out of {len(names)}")
    order = [names[i] for i in rng.permutation(len(names))]
    test, rest = order[:n_test], order[n_test:]
    n_val = int(round(val_fraction * len(rest)))
    if val_fraction > 0 and n_val == 0 and len(rest) >= 2:
        n_val = 1
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": sorted(test)}


def subject_maps(
    arrays: Mapping[str, np.ndarray], grade: str, slices_range: tuple[int, int], grid: MapGrid, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Synthesise one subject's maps and extract the selected slabs.

    Returns
    -------
    maps : dict of kind to ndarray, shape (n_slices, size, size)
        Concentration / ratio maps (not normalised).
    guide : ndarray, shape (n_slices, size, size)
        FLAIR of each slab scaled to [0, 1] (99.5th percentile of the brain -> 1).
    chosen : ndarray of int
        The centre slice of each slab.
    """
    missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"subject arrays lack {', '.join(missing)}")
    voxel_mm = np.asarray(arrays["voxel_mm"], dtype=float)
    depth = slab_voxels(grid.thickness_mm, float(voxel_mm[2]))
    volumes = synthesize_maps(arrays["gm"], arrays["wm"], arrays["csf"], arrays["labels"], grade, rng)
    candidates = candidate_slices(arrays["labels"], arrays["flair"], arrays["brain"], depth)
    chosen = choose_slices(candidates, *slices_range, rng)
    if len(chosen) == 0:
        empty = np.zeros((0, grid.size, grid.size), np.float32)
        return {kind: empty for kind in KINDS}, empty, chosen
    centre = brain_centre(arrays["brain"])
    flair_scale = float(np.percentile(arrays["flair"][arrays["brain"]], 99.5)) or 1.0
    maps = {kind: np.stack([extract_slab(volumes[kind], k, voxel_mm, centre, grid) for k in chosen]) for kind in KINDS}
    guide = np.stack([extract_slab(arrays["flair"], k, voxel_mm, centre, grid) for k in chosen]) / flair_scale
    return maps, np.clip(guide, 0.0, 1.0).astype(np.float32), chosen


def subject_seeds(seed: int, n_subjects: int) -> list[np.random.SeedSequence]:
    """Seeds of the split (first) and of each subject in ``subjects.csv`` order (the rest)."""
    return np.random.SeedSequence([seed, 2]).spawn(n_subjects + 1)


def figure_maps(
    run_dir: str | os.PathLike, params: Mapping[str, Any], subject: str, k: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The five normalised maps and the guide of ``subject``'s slab at slice ``k`` (Figure 1, bottom row).

    The subject's concentrations are drawn from the same seed as in the dataset, so the maps are the
    ones the dataset holds when it selected that slice.
    """
    keyed = stage_params(params)
    anatomy = cache.current(run_dir, "anatomy")
    subjects = pd.read_csv(anatomy.path / "subjects.csv", dtype={"subject": str})
    matches = np.flatnonzero(subjects["subject"] == subject)
    if matches.size == 0:
        raise ValueError(f"{anatomy.path / 'subjects.csv'}: no subject {subject!r}")
    index = int(matches[0])
    grade = subjects["grade"].iloc[index]
    arrays = read_subject(anatomy, subject)
    rng = np.random.default_rng(subject_seeds(keyed["seed"], len(subjects))[index + 1])
    volumes = synthesize_maps(arrays["gm"], arrays["wm"], arrays["csf"], arrays["labels"], grade, rng)
    grid = MapGrid(keyed["map_size"], float(keyed["fov_mm"]), float(keyed["slice_thickness_mm"]))
    voxel_mm, centre = np.asarray(arrays["voxel_mm"], float), brain_centre(arrays["brain"])
    maps = {kind: normalise(extract_slab(volumes[kind], k, voxel_mm, centre, grid))[0] for kind in KINDS}
    flair = extract_slab(arrays["flair"], k, voxel_mm, centre, grid)
    return maps, flair / max(float(flair.max()), 1e-12)


def normalise(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide each map (last two axes) by its maximum; return the maps and the maxima (0 stays 0)."""
    scale = maps.max(axis=(-2, -1))
    safe = np.where(scale > 0, scale, 1.0)
    return (maps / safe[..., None, None]).astype(np.float32), scale.astype(np.float64)


def run_dataset_stage(
    run_dir: str | os.PathLike, params: Mapping[str, Any], progress: bool = True
) -> cache.StageOutput:
    """Build (or reuse) the ``dataset`` stage output for ``params`` from the current ``anatomy`` output.

    Returns
    -------
    mrsisr.study.cache.StageOutput
        The complete, published output folder (see CONTRIBUTING.md for its files).
    """
    keyed = stage_params(params)
    anatomy = cache.current(run_dir, "anatomy")
    output = cache.stage_output(run_dir, STAGE, keyed, upstream=[anatomy.key])
    if not output.complete:
        _build(anatomy, output, keyed, progress)
        output.mark_complete()
    cache.publish(run_dir, output, exports=("manifest.json",))
    return output


def _build(anatomy: cache.StageOutput, output: cache.StageOutput, keyed: dict[str, Any], progress: bool) -> None:
    subjects = pd.read_csv(anatomy.path / "subjects.csv", dtype={"subject": str})
    if subjects.empty:
        raise ValueError(f"{anatomy.path / 'subjects.csv'} lists no subject")
    grid = MapGrid(keyed["map_size"], float(keyed["fov_mm"]), float(keyed["slice_thickness_mm"]))
    seeds = subject_seeds(keyed["seed"], len(subjects))
    splits = split_subjects(
        subjects, keyed["n_test_subjects"], float(keyed["val_fraction"]), np.random.default_rng(seeds[0])
    )
    split_of = {name: split for split, names in splits.items() for name in names}
    parts: dict[str, list] = {split: [] for split in SPLITS}
    skipped = []
    rows = list(subjects.itertuples(index=False))
    for index, row in enumerate(tqdm(rows, desc=STAGE, disable=not progress)):
        split = split_of[row.subject]
        n_range = (
            (keyed["test_slices_per_subject"],) * 2 if split == "test" else (keyed["slices_min"], keyed["slices_max"])
        )
        arrays = read_subject(anatomy, row.subject)
        try:
            maps, guide, chosen = subject_maps(
                arrays, row.grade, n_range, grid, np.random.default_rng(seeds[index + 1])
            )
        except ValueError as error:
            raise ValueError(f"{anatomy.path / (row.subject + '.npz')}: {error}") from error
        if len(chosen) == 0:
            skipped.append(row.subject)
            continue
        parts[split].append((row, maps, guide, chosen))
    if not any(parts.values()):
        raise ValueError(f"no subject of {anatomy.path} has a slice with tumour above the slice's mean FLAIR")
    manifest: dict[str, Any] = {"params": keyed, "anatomy_key": anatomy.key, "skipped_subjects": skipped, "splits": {}}
    for split in SPLITS:
        manifest["splits"][split] = _write_split(output.path, split, parts[split], keyed)
    save_json(output.path / "manifest.json", manifest)


def _write_split(folder: Path, split: str, entries: list, keyed: dict[str, Any]) -> dict[str, Any]:
    hr_maps, guides, meta = [], [], []
    for row, maps, guide, chosen in entries:
        for s, k in enumerate(chosen):
            for kind in KINDS:
                hr_maps.append(maps[kind][s])
                guides.append(guide[s])
                meta.append({"subject": row.subject, "grade": row.grade, "slice": int(k), "kind": kind})
    size = keyed["map_size"]
    hr_raw = np.stack(hr_maps) if hr_maps else np.zeros((0, size, size), np.float32)
    hr, scale = normalise(hr_raw)
    lr = make_lowres(hr, keyed["lr_size"], keyed["lowres_method"])
    guide = np.stack(guides).astype(np.float32) if guides else np.zeros((0, size, size), np.float32)
    table = pd.DataFrame(meta, columns=list(META_COLUMNS[:-1]))
    table["scale"] = scale
    info: dict[str, Any] = {"maps": len(table), "subjects": sorted({row.subject for row, *_ in entries})}
    for name, array in (("hr", hr), ("lr", lr), ("guide", guide)):
        save_npy(folder / f"{split}_{name}.npy", array)
        info[f"sha256_{name}"] = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    save_text(folder / f"{split}_meta.csv", table.to_csv(index=False))
    return info


def load_split(
    dataset_dir: str | os.PathLike, split: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Load one split of a ``dataset`` stage output.

    Parameters
    ----------
    dataset_dir : path-like
        The stage output folder (``cache.current(run_dir, "dataset").path``).
    split : {"train", "val", "test"}
    mmap : bool
        Memory-map the arrays instead of reading them.

    Returns
    -------
    lr : ndarray (N, 32, 32); guide : ndarray (N, 128, 128); hr : ndarray (N, 128, 128); meta : DataFrame
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    folder = Path(dataset_dir)
    mode = "r" if mmap else None
    arrays = []
    for name in ("lr", "guide", "hr"):
        path = folder / f"{split}_{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the synthesis stage (notebook 02) first")
        arrays.append(np.load(path, mmap_mode=mode, allow_pickle=False))
    meta = pd.read_csv(folder / f"{split}_meta.csv", dtype={"subject": str})
    if not len(meta) == len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise ValueError(f"{folder}: split {split!r} has arrays and metadata of different lengths")
    return arrays[0], arrays[1], arrays[2], meta
