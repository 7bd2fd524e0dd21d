"""Validation on 7T-like MRSI volumes (notebook 05): protocol, cached stage driver and Figure 4.

Protocol, per metabolite volume and axial slice whose brain covers at least ``min_brain_fraction``
of the field of view:

1. **Reference**: the acquired map (invalid voxels 0, divided by its maximum) resampled to 128 x 128
   by zero-filled k-space interpolation (:func:`mrsisr.maps.kspace.fourier_resample`), the interpolation
   consistent with how MRSI forms its images; clipped at 0 and divided by its maximum again, so that
   it lies in [0, 1] like the training maps.
2. **Input**: the reference reduced to 32 x 32 by the same k-space truncation as the training data.
3. **Upscaled**: by the network (with the FLAIR slice of the same field of view as guide when the
   model is guided) and by the classical baselines (nearest, spline, ...).
4. **Scores**: the metrics and tests of notebook 04 (:mod:`mrsisr.stages.evaluation`), against the reference.

The reference is an interpolation of the acquired map, not a finer acquisition: the scores measure
how well each method recovers a 64 x 64 acquisition from its 32 x 32 central k-space, as in the paper.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.io import SUFFIXES, MRSIVolume, check_same_field_of_view, load_mrsi_volume, metabolite_from_name
from mrsisr.mrsi.standin_7t import STANDIN_LABEL, make_standin, write_standin
from mrsisr.network import packaged
from mrsisr.network.model import is_guided, load_model, predict
from mrsisr.scoring import lpips
from mrsisr.scoring.baselines import interpolate_all
from mrsisr.scoring.tables import REFERENCE_METHOD, TableViews, evaluate_predictions, write_results
from mrsisr.stages import get_stage
from mrsisr.study import cache
from mrsisr.study.atomic import atomic_path, file_sha256, save_json, save_npz
from mrsisr.upscale import guide_slices

STAGE = get_stage("validation_7t")
CACHE_VERSION = 3
REFERENCE_SIZE = 128
LR_SIZE = 32
GUIDE_TOKENS = ("flair", "t1", "t1w")
FIGURE_FILE = "figure4.npz"
RECORD_FILE = "validation.json"
TABLES = ("table2.csv", "table2_by_kind.csv", "statistics.csv")
EXPORTS = ("metrics.csv", *TABLES, "slices.csv", FIGURE_FILE, RECORD_FILE)
#: The paper's 7T validation (two glioblastoma patients of the open Vienna 7T 3D-CRT-MRSI data): mean MSE.
PAPER_MSE = {"model": 0.0016, "spline": 0.0035, "nearest": 0.0044}


@dataclass(frozen=True)
class ValidationResult(TableViews):
    """What notebook 05 shows.

    Attributes
    ----------
    record : dict
        ``is_standin``, ``data`` (a sentence naming the data), ``data_short``, ``model``, ``guided``,
        ``n_slices``, ``subjects``.
    tables : dict of str to DataFrame
        ``table2.csv``, ``table2_by_kind.csv`` and ``statistics.csv`` by file name.
    figure : dict of str to ndarray
        Figure 4's arrays (``reference``, ``lowres``, ``guide``, ``kinds``, ``slice``, ``pred_<method>``).
    """

    output: cache.StageOutput
    record: dict
    tables: dict
    figure: dict

    @property
    def paper_comparison(self) -> pd.DataFrame:
        """Mean MSE of each method here beside the paper's 7T validation (NaN where the paper has none)."""
        ours = self.summary.set_index("method")["mse_mean"]
        columns = {"MSE, paper (7T, 2 patients)": pd.Series(PAPER_MSE), "MSE, here": ours}
        return pd.DataFrame(columns).reindex(ours.index)

    @property
    def glue_values(self) -> dict:
        """The numbers the book's prose pages quote."""
        overall = self.summary.set_index("method")
        values = {f"mse_{method}": float(overall.loc[method, "mse_mean"]) for method in ("model", "spline", "nearest")}
        return values | {
            "is_standin": bool(self.record["is_standin"]),
            "data": self.record["data"],
            "n_slices": int(self.record["n_slices"]),
        }


def validation_slices(
    volume: MRSIVolume, subject: str, grade: str, min_brain_fraction: float, guide: MRSIVolume | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, pd.DataFrame]:
    """Apply steps 1 and 2 of the protocol to one metabolite volume.

    Returns
    -------
    hr : ndarray, shape (N, 128, 128)
        References in [0, 1].
    lr : ndarray, shape (N, 32, 32)
        Inputs.
    guide : ndarray, shape (N, 128, 128) or None
        The guide's slices, scaled to [0, 1].
    meta : pandas.DataFrame
        ``subject, slice, kind, grade, scale, brain_fraction`` (``scale``: the acquired slice's maximum).
    """
    height, width, _ = volume.data.shape
    if height != width:
        raise ValueError(f"{volume.path}: validation needs square slices, got {height} x {width}")
    valid = np.isfinite(volume.data) & (np.nan_to_num(volume.data) > 0)
    fractions = valid.mean(axis=(0, 1))
    chosen = np.flatnonzero(fractions >= min_brain_fraction)
    if chosen.size == 0:
        raise ValueError(
            f"{volume.path}: no slice has a brain fraction of at least {min_brain_fraction} "
            f"(largest {fractions.max():.2f})"
        )
    acquired = np.moveaxis(np.nan_to_num(volume.data[:, :, chosen], nan=0.0), 2, 0).astype(np.float64)
    scales = acquired.max(axis=(1, 2))
    reference = np.clip(fourier_resample(acquired / scales[:, None, None], REFERENCE_SIZE), 0.0, None)
    hr = (reference / reference.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    lr = fourier_resample(hr, LR_SIZE)
    guides = guide_slices(guide, (REFERENCE_SIZE, REFERENCE_SIZE))[chosen] if guide is not None else None
    meta = pd.DataFrame(
        {
            "subject": subject,
            "slice": chosen,
            "kind": volume.metabolite,
            "grade": grade,
            "scale": scales,
            "brain_fraction": fractions[chosen],
        }
    )
    return hr, lr, guides, meta


def find_mrsi_files(mrsi_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """Find metabolite maps and guides under ``mrsi_dir``, grouped by subject (the sub-folder, or ``mrsi``).

    A file belongs to a subject's maps when its name names a metabolite
    (:func:`mrsisr.mrsi.io.metabolite_from_name`), to its guide when a part of its name is ``flair``,
    ``t1`` or ``t1w``. Returns subject -> {kind or ``"guide"``: path}.
    """
    root = Path(mrsi_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"mrsi_dir {root} is not a folder")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES)):
        subject = path.parent.relative_to(root).as_posix().replace("/", "_") if path.parent != root else "mrsi"
        parts = set(path.name.lower().replace("-", "_").replace(".", "_").split("_"))
        role = "guide" if parts & set(GUIDE_TOKENS) else metabolite_from_name(path)
        if role is None:
            continue
        if role in found.setdefault(subject, {}):
            raise ValueError(f"{root}: two files for {role} of subject {subject}: {found[subject][role]} and {path}")
        found[subject][role] = path
    if not any(set(files) - {"guide"} for files in found.values()):
        raise ValueError(f"{root}: no metabolite maps found (names must contain NAA, tCr, tCho or an alias)")
    return found


def choose_model(run_dir: str | os.PathLike, guided_input: bool):
    """Return (model, description): the run's trained model, or the packaged unguided one when no guide exists.

    An unguided run model is used as it is (a guide, if any, is then unused). The study's model is
    FLAIR-guided: for real maps without a co-registered FLAIR/T1 the packaged default model is used if
    it is unguided; otherwise a ValueError says what is missing.
    """
    trained = cache.current(run_dir, "training")
    model = load_model(trained.path / "model.keras")
    if guided_input or not is_guided(model):
        return model, f"the run's trained model ({trained.key})"
    fallback = load_model(packaged.default_model_path())
    if not is_guided(fallback):
        return fallback, "the packaged unguided default model (no guide available)"
    raise ValueError(
        "the run's model is guided but no FLAIR/T1 guide was given: give mrsi_guide (or a flair/t1 file "
        "beside the maps), or package an unguided default model (scripts/train_default_model.py)"
    )


def _subjects(params: BaseModel) -> dict[str, dict[str, Path]]:
    """The real MRSI files of ``mrsi_dir``, by subject, with the guide that ``mrsi_guide`` names."""
    subjects = find_mrsi_files(params.mrsi_dir)
    if params.mrsi_guide:
        if len(subjects) != 1:
            raise ValueError(
                f"mrsi_guide {params.mrsi_guide} given for {len(subjects)} subjects; "
                "put one flair file in each subject's folder instead"
            )
        next(iter(subjects.values()))["guide"] = Path(params.mrsi_guide)
    return subjects


def run(run_dir: str | os.PathLike, params: BaseModel) -> ValidationResult:
    """Run (or reuse) the protocol on every map of the real or stand-in MRSI data; tables and Figure 4's data.

    With an empty ``mrsi_dir`` the stand-in (:mod:`mrsisr.mrsi.standin_7t`) is simulated and written as
    NIfTI into the stage folder, then read back through the same path as real files. The cache key
    covers every parameter, the bytes of real input files and of the packaged default model, and the
    key of the training output.

    ``run_dir`` and ``params`` are those of every stage's ``run`` (:mod:`mrsisr.stages`).

    """
    default = packaged.DEFAULT_MODEL
    values = params.model_dump() | {
        "lpips_weights": lpips.weights_digest(),
        "packaged_model": file_sha256(default) if default.is_file() else "",
    }
    subjects = _subjects(params) if params.mrsi_dir else {}
    values["files"] = {s: {r: file_sha256(p) for r, p in files.items()} for s, files in subjects.items()}
    output = cache.open_stage(run_dir, STAGE, values, CACHE_VERSION)
    if not output.complete:
        if not params.mrsi_dir:
            standin = make_standin(params.seed, params.standin_grade, params.standin_noise)
            paths = write_standin(output.path / "standin", standin)
            subjects = {"standin": {**{k: p for k, p in paths.items() if k != "flair"}, "guide": paths["flair"]}}
        _validate(run_dir, output, params, subjects)
        output.mark_complete()
    cache.publish(run_dir, output, exports=EXPORTS)
    return read_result(output)


def _validate(run_dir, output: cache.StageOutput, params: BaseModel, subjects: dict) -> None:
    grade = params.standin_grade if not params.mrsi_dir else "unknown"
    parts = []
    for subject, files in subjects.items():
        guide = load_mrsi_volume(files["guide"], guide=True) if "guide" in files else None
        for kind, path in files.items():
            if kind == "guide":
                continue
            volume = load_mrsi_volume(path, metabolite=kind)
            if guide is not None:
                check_same_field_of_view(volume, guide)
            parts.append(validation_slices(volume, subject, grade, params.val_min_brain_fraction, guide))
    hr, lr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    guides = None if any(p[2] is None for p in parts) else np.concatenate([p[2] for p in parts])
    meta = pd.concat([p[3] for p in parts], ignore_index=True)
    model, model_description = choose_model(run_dir, guides is not None)
    predictions = {REFERENCE_METHOD: predict(model, lr, guides if is_guided(model) else None)}
    predictions |= interpolate_all(lr, params.methods)
    write_results(output.path, evaluate_predictions(predictions, hr, meta))
    with atomic_path(output.path / "slices.csv", suffix=".csv") as tmp:
        meta.to_csv(tmp, index=False)
    shown = figure_slice(meta)
    anatomy = {"guide": guides[shown]} if guides is not None else {}
    save_npz(
        output.path / FIGURE_FILE,
        reference=hr[shown],
        lowres=lr[shown],
        kinds=meta["kind"].to_numpy()[shown].astype(str),
        slice=meta["slice"].to_numpy()[shown],
        **anatomy,
        **{f"pred_{method}": pred[shown] for method, pred in predictions.items()},
    )
    is_standin = not params.mrsi_dir
    save_json(
        output.path / RECORD_FILE,
        {
            "is_standin": is_standin,
            "data": STANDIN_LABEL if is_standin else f"MRSI maps from {params.mrsi_dir}",
            "data_short": "STAND-IN (simulated)" if is_standin else "real MRSI",
            "model": model_description,
            "guided": bool(is_guided(model)),
            "n_slices": int(len(meta)),
            "subjects": sorted(subjects),
        },
    )


def read_result(output: cache.StageOutput) -> ValidationResult:
    """Read a complete validation output into the result its notebook shows."""
    with np.load(output.path / FIGURE_FILE, allow_pickle=False) as data:
        figure = {name: data[name] for name in data.files}
    return ValidationResult(
        output=output,
        record=cache.read_json(output.path / RECORD_FILE),
        tables={name: pd.read_csv(output.path / name) for name in TABLES},
        figure=figure,
    )


def figure_slice(meta: pd.DataFrame) -> np.ndarray:
    """Indices (into ``meta``) of Figure 4's maps: every kind of the first subject at one slice.

    Among the slices that every kind of that subject has and whose brain fraction is at least 3/4 of
    the largest, the slice with the highest tCho maximum (the tumour's choline peak, when there is
    tCho) or else the most brain.
    """
    subject = meta["subject"].iloc[0]
    rows = meta[meta["subject"] == subject]
    common = set.intersection(*(set(group["slice"]) for _, group in rows.groupby("kind")))
    rows_common = rows[rows["slice"].isin(common)]
    candidates = rows_common[rows_common["brain_fraction"] >= 0.75 * rows_common["brain_fraction"].max()]
    choline = candidates[candidates["kind"] == "tCho"]
    ranked = choline.sort_values("scale") if len(choline) else candidates.sort_values("brain_fraction")
    best = ranked["slice"].iloc[-1]
    return rows.index[rows["slice"] == best].to_numpy()
