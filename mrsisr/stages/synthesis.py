"""Stage ``synthesis`` (notebook 02): metabolite maps of selected slices, low-resolution inputs, the split.

For each subject of the segmentation stage: the synthesis (:mod:`mrsisr.maps.synthesis`) on the whole
volume, the paper's slice selection (:mod:`mrsisr.maps.slices`), one 128x128 slab per selected slice for
each of the five map kinds, each normalised to [0, 1] by its maximum, the 32x32 input
(:mod:`mrsisr.maps.lowres`) and the FLAIR guide of the same slab. Subjects are split into train / val /
test before any map is made, so no subject contributes to two splits. Every random draw comes from a
per-subject seed spawned from the study seed: the same parameters give the same arrays bit for bit.

Each split's metadata, ``<split>_meta.csv``, gives per map its ``subject``, ``grade``, ``slice``, ``kind``,
``lesion_mm2`` (the area of the lesion in the map: every tumour label, i.e. necrotic or non-enhancing core, oedema
and enhancing tumour; :func:`mrsisr.maps.slices.lesion_area_mm2`) and ``scale`` (the maximum it was divided by).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from tqdm import tqdm

from mrsisr.maps import synthesis as map_synthesis
from mrsisr.maps.calibration import calibrate_subjects, setting_label
from mrsisr.maps.lowres import LOWRES_METHODS, make_lowres
from mrsisr.maps.slices import (
    MapGrid,
    brain_centre,
    candidate_slices,
    choose_slices,
    extract_slab,
    lesion_area_mm2,
    slab_voxels,
)
from mrsisr.maps.synthesis import KINDS, normalise_maps, synthesize_maps, table1
from mrsisr.stages import get_stage, segmentation
from mrsisr.study import cache
from mrsisr.study.atomic import save_json, save_npy, save_text
from mrsisr.study.profiles import load_profile, stage_parameters

STAGE = get_stage("synthesis")
CACHE_VERSION = 4  # 4: lesion_mm2 in the split metadata
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLUMNS = ("subject", "grade", "slice", "kind", "lesion_mm2", "scale")
REQUIRED_ARRAYS = ("flair", "labels", "brain", "gm", "wm", "csf", "voxel_mm")
MANIFEST = "manifest.json"
CALIBRATION = "calibration.csv"
#: Settings the paper's text allows, beside this run's own, in the calibration of notebook 02.
ALTERNATIVE_SETTINGS: tuple[dict[str, Any], ...] = (
    {"slice_thickness_mm": 10.0, "tissue_model": "partial_volume", "fov_mm": 220.0},  # the physical setting
    {"slice_thickness_mm": 0.0, "tissue_model": "partial_volume", "fov_mm": 220.0},
    {"slice_thickness_mm": 0.0, "tissue_model": "hard", "fov_mm": 220.0},
    {"slice_thickness_mm": 0.0, "tissue_model": "hard", "fov_mm": 240.0, "lowres_method": "block"},
)


@dataclass(frozen=True)
class SynthesisResult:
    """What notebook 02 shows.

    Attributes
    ----------
    counts : DataFrame
        Subjects, slices and maps (by grade) per split.
    skipped : list of str
        Subjects without a slice whose tumour rises above the slice's mean FLAIR.
    table1 : DataFrame
        The literature values behind the maps.
    figure_maps : dict of str to ndarray
        The five normalised maps of Figure 1's slab (the segmentation stage's figure subject and slice).
    figure_guide : ndarray
        The FLAIR of that slab.
    lowres_examples : dict of str to ndarray
        Figure 1's tCho map and its low-resolution versions by every method.
    calibration : DataFrame
        Nearest and spline scores of this run's synthesis setting and of the alternatives the paper's text
        allows, on the first ``calibration_subjects`` subjects, beside the paper's rows
        (:mod:`mrsisr.maps.calibration`); empty when ``calibration_subjects`` is 0.
    """

    output: cache.StageOutput
    counts: pd.DataFrame
    skipped: list
    table1: pd.DataFrame
    figure_maps: dict
    figure_guide: np.ndarray
    lowres_examples: dict
    calibration: pd.DataFrame

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        values = {f"n_{split}_maps": int(self.counts.loc[split, "maps"]) for split in SPLITS}
        values["n_subjects"] = int(self.counts["subjects"].sum())
        for method in ("nearest", "spline"):  # this run's own setting, the first one calibrated
            for metric in ("psnr", "ssim"):
                values[f"calibration_{method}_{metric}"] = self._calibrated(method, metric)
        return values

    def _calibrated(self, method: str, metric: str) -> float:
        if self.calibration.empty:
            return float("nan")
        own = self.calibration[self.calibration["setting"] != "paper"]["setting"].iloc[0]
        row = self.calibration[(self.calibration["setting"] == own) & (self.calibration["method"] == method)]
        return float(row[metric].iloc[0])


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
    arrays: Mapping[str, np.ndarray],
    grade: str,
    slices_range: tuple[int, int],
    params: Mapping[str, Any],
    rng: np.random.Generator,
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
    grid = map_grid(params)
    depth = slab_voxels(grid.thickness_mm, float(voxel_mm[2]))
    volumes = subject_volumes(arrays, grade, params, rng)
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


def synthesize_subject(
    subject: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, seed: int = 0, profile: str = "demo"
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Synthesise one subject's maps as the synthesis stage does, for a profile's parameters (and overrides).

    Parameters
    ----------
    subject : mapping
        A subject from :func:`mrsisr.anatomy.subject.load_subject` or
        :func:`mrsisr.anatomy.phantom.make_phantom` (``gm, wm, csf, labels, flair, brain, voxel_mm, grade``).
    overrides : mapping, optional
        Synthesis parameters to change (``profiles.yaml``, section ``synthesis``).
    seed : int
        Seed of the subject's random draws (concentrations, slices).
    profile : str
        The profile whose synthesis parameters apply.

    Returns
    -------
    maps : dict of kind to ndarray (n_slices, size, size)
        The five maps of each selected slab, each divided by its maximum.
    guide : ndarray (n_slices, size, size)
        The FLAIR of each slab, scaled to [0, 1].
    slices : ndarray of int
        The centre slice of each slab.
    """
    params = stage_parameters("synthesis", load_profile(profile, overrides)).model_dump()
    slices_range = (params["slices_min"], params["slices_max"])
    rng = np.random.default_rng(seed)
    maps, guide, chosen = subject_maps(subject, subject["grade"], slices_range, params, rng)
    return {kind: normalise_maps(stack)[0] for kind, stack in maps.items()}, guide, chosen


def load_test_split(run_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """The test split of a run's current synthesis output: ``lr, guide, hr, meta`` (see :func:`load_split`)."""
    return load_split(cache.current(run_dir, "synthesis").path, "test")


def subject_seeds(seed: int, n_subjects: int) -> list[np.random.SeedSequence]:
    """Seeds of the split (first) and of each subject in ``subjects.csv`` order (the rest)."""
    return np.random.SeedSequence([seed, 2]).spawn(n_subjects + 1)


def figure_maps(
    segmentation_output: cache.StageOutput, params: Mapping[str, Any], subject: str, k: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The five normalised maps and the guide of ``subject``'s slab at slice ``k`` (Figure 1, bottom row).

    The subject's concentrations are drawn from the same seed as in the dataset, so the maps are the
    ones the dataset holds when it selected that slice.
    """
    subjects = pd.read_csv(segmentation_output.path / "subjects.csv", dtype={"subject": str})
    matches = np.flatnonzero(subjects["subject"] == subject)
    if matches.size == 0:
        raise ValueError(f"{segmentation_output.path / 'subjects.csv'}: no subject {subject!r}")
    index = int(matches[0])
    arrays = segmentation.read_subject(segmentation_output, subject)
    rng = np.random.default_rng(subject_seeds(params["seed"], len(subjects))[index + 1])
    grade = subjects["grade"].iloc[index]
    volumes = subject_volumes(arrays, grade, params, rng)
    grid = map_grid(params)
    voxel_mm, centre = np.asarray(arrays["voxel_mm"], float), brain_centre(arrays["brain"])
    maps = {kind: normalise_maps(extract_slab(volumes[kind], k, voxel_mm, centre, grid))[0] for kind in KINDS}
    flair = extract_slab(arrays["flair"], k, voxel_mm, centre, grid)
    return maps, flair / max(float(flair.max()), 1e-12)


def subject_volumes(
    arrays: Mapping[str, np.ndarray], grade: str, params: Mapping[str, Any], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The subject's five concentration and ratio volumes, from its tissue fractions and tumour labels."""
    tissues = (arrays["gm"], arrays["wm"], arrays["csf"], arrays["labels"])
    return synthesize_maps(*tissues, grade, rng, tissue_model=params["tissue_model"])


def lowres_inputs(hr: np.ndarray, params: Mapping[str, Any], stream: int) -> np.ndarray:
    """The low-resolution inputs of normalised maps ``hr``, with ``map_noise`` drawn from seed stream ``stream``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(params["seed"]), 3, stream]))
    return make_lowres(hr, params["lowres_size"], params["lowres_method"], noise=params["map_noise"], rng=rng)


def lesion_areas(arrays: Mapping[str, np.ndarray], chosen: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """The lesion's area (mm^2, :func:`mrsisr.maps.slices.lesion_area_mm2`) in the map of each chosen slab."""
    voxel_mm, grid = np.asarray(arrays["voxel_mm"], dtype=float), map_grid(params)
    centre = brain_centre(arrays["brain"])
    return np.array([lesion_area_mm2(arrays["labels"], k, voxel_mm, centre, grid) for k in chosen], dtype=float)


def map_grid(params: Mapping[str, Any]) -> MapGrid:
    """The maps' grid: matrix, field of view and slab thickness."""
    return MapGrid(params["map_size"], float(params["fov_mm"]), float(params["slice_thickness_mm"]))


def keyed_values(params: BaseModel) -> dict[str, Any]:
    """What the synthesis output is keyed by: the stage's parameters and the literature values of Table 1.

    The values of ``mrsisr/data/metabolites.yaml`` are inputs like the parameters, so an edited value makes new
    maps instead of reusing the old ones (its comments do not count: the parsed values do).
    """
    return params.model_dump() | {"literature_values": map_synthesis.literature_values()}


def run(run_dir: str | os.PathLike, params: BaseModel, progress: bool = True) -> SynthesisResult:
    """Build (or reuse) the synthesis output of ``params`` from the current segmentation output, and publish it.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    Parameters
    ----------
    progress : bool
        Show a progress bar.
    """
    values = keyed_values(params)
    output = cache.open_stage(run_dir, STAGE, values, CACHE_VERSION)
    anatomy = cache.current(run_dir, "segmentation")
    if not output.complete:
        _build(anatomy, output, values, progress)
        output.mark_complete()
    cache.publish(run_dir, output, exports=(MANIFEST,))
    return read_result(output, anatomy, values)


def read_result(output: cache.StageOutput, anatomy: cache.StageOutput, params: Mapping[str, Any]) -> SynthesisResult:
    """Read a complete synthesis output into the result its notebook shows."""
    metas = {split: load_split(output.path, split)[3] for split in SPLITS}
    counts = pd.DataFrame(
        {
            split: {
                "subjects": meta["subject"].nunique(),
                "slices": len(meta) // len(KINDS),
                "maps": len(meta),
                "HGG maps": int((meta["grade"] == "HGG").sum()),
                "LGG maps": int((meta["grade"] == "LGG").sum()),
            }
            for split, meta in metas.items()
        }
    ).T
    shown = segmentation.read_result(anatomy)
    maps, guide = figure_maps(anatomy, params, shown.figure_subject, shown.figure_slice)
    tcho = maps["tCho"]
    lowres = {"128x128 (truth)": tcho}
    lowres |= {f"32x32, {method}": make_lowres(tcho, params["lowres_size"], method) for method in LOWRES_METHODS}
    return SynthesisResult(
        output=output,
        counts=counts,
        skipped=cache.read_json(output.path / MANIFEST)["skipped_subjects"],
        table1=table1(),
        figure_maps=maps,
        figure_guide=guide,
        lowres_examples=lowres,
        calibration=read_table(output.path / CALIBRATION),
    )


def _build(anatomy: cache.StageOutput, output: cache.StageOutput, keyed: dict[str, Any], progress: bool) -> None:
    subjects = pd.read_csv(anatomy.path / "subjects.csv", dtype={"subject": str})
    if subjects.empty:
        raise ValueError(f"{anatomy.path / 'subjects.csv'} lists no subject")
    seeds = subject_seeds(keyed["seed"], len(subjects))
    splits = split_subjects(
        subjects, keyed["n_test_subjects"], float(keyed["val_fraction"]), np.random.default_rng(seeds[0])
    )
    split_of = {name: split for split, names in splits.items() for name in names}
    parts: dict[str, list] = {split: [] for split in SPLITS}
    skipped = []
    rows = list(subjects.itertuples(index=False))
    for index, row in enumerate(tqdm(rows, desc=STAGE.name, disable=not progress)):
        split = split_of[row.subject]
        n_range = (
            (keyed["test_slices_per_subject"],) * 2 if split == "test" else (keyed["slices_min"], keyed["slices_max"])
        )
        arrays = segmentation.read_subject(anatomy, row.subject)
        try:
            maps, guide, chosen = subject_maps(
                arrays, row.grade, n_range, keyed, np.random.default_rng(seeds[index + 1])
            )
        except ValueError as error:
            raise ValueError(f"{anatomy.path / (row.subject + '.npz')}: {error}") from error
        if len(chosen) == 0:
            skipped.append(row.subject)
            continue
        parts[split].append((row, maps, guide, chosen, lesion_areas(arrays, chosen, keyed)))
    if not any(parts.values()):
        raise ValueError(f"no subject of {anatomy.path} has a slice with tumour above the slice's mean FLAIR")
    manifest: dict[str, Any] = {"params": keyed, "anatomy_key": anatomy.key, "skipped_subjects": skipped, "splits": {}}
    for split in SPLITS:
        manifest["splits"][split] = _write_split(output.path, split, parts[split], keyed)
    save_json(output.path / MANIFEST, manifest)
    save_text(output.path / CALIBRATION, calibration(anatomy, subjects, keyed).to_csv(index=False))


def read_table(path: Path) -> pd.DataFrame:
    """A CSV table of the stage; an empty one (no columns) when the stage wrote none."""
    return pd.read_csv(path) if path.read_text().strip() else pd.DataFrame()


def calibration(anatomy: cache.StageOutput, subjects: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """Nearest and spline scores of this run's setting and of :data:`ALTERNATIVE_SETTINGS` on its first subjects."""
    if params["calibration_subjects"] == 0:
        return pd.DataFrame()
    names = ("slice_thickness_mm", "tissue_model", "fov_mm", "lowres_method", "map_noise")
    own = {name: params[name] for name in names}
    voxel = {"anatomy_voxel_mm": float(anatomy.params["anatomy_voxel_mm"])}
    settings = [voxel | own] + [voxel | setting for setting in ALTERNATIVE_SETTINGS]
    unique = list({setting_label(s): s for s in settings}.values())
    chosen = subjects.head(params["calibration_subjects"])
    cohort = [(segmentation.read_subject(anatomy, row.subject), row.grade) for row in chosen.itertuples(index=False)]
    name = f"{anatomy.params['anatomy_source']} ({len(cohort)} subjects)"
    return calibrate_subjects(unique, {name: cohort}, seed=params["seed"])


def _write_split(folder: Path, split: str, entries: list, keyed: dict[str, Any]) -> dict[str, Any]:
    hr_maps, guides, meta = [], [], []
    for row, maps, guide, chosen, areas in entries:
        for s, k in enumerate(chosen):
            for kind in KINDS:
                hr_maps.append(maps[kind][s])
                guides.append(guide[s])
                names = {"subject": row.subject, "grade": row.grade, "slice": int(k), "kind": kind}
                meta.append(names | {"lesion_mm2": float(areas[s])})
    size = keyed["map_size"]
    hr_raw = np.stack(hr_maps) if hr_maps else np.zeros((0, size, size), np.float32)
    hr, scale = normalise_maps(hr_raw)
    lr = lowres_inputs(hr, keyed, SPLITS.index(split))
    guide = np.stack(guides).astype(np.float32) if guides else np.zeros((0, size, size), np.float32)
    table = pd.DataFrame(meta, columns=list(SPLIT_COLUMNS[:-1]))
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
            raise FileNotFoundError(f"{path}: missing; run the synthesis stage first (`mrsisr run --stage synthesis`)")
        arrays.append(np.load(path, mmap_mode=mode, allow_pickle=False))
    meta = pd.read_csv(folder / f"{split}_meta.csv", dtype={"subject": str})
    if not len(meta) == len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise ValueError(f"{folder}: split {split!r} has arrays and metadata of different lengths")
    return arrays[0], arrays[1], arrays[2], meta
