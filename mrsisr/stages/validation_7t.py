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

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mrsisr.maps.kspace import fourier_resample
from mrsisr.mrsi.io import SUFFIXES, MRSIVolume, check_same_field_of_view, load_mrsi_volume, metabolite_from_name
from mrsisr.mrsi.standin_7t import STANDIN_LABEL, make_standin, write_standin
from mrsisr.network import packaged as default_model
from mrsisr.study.atomic import atomic_path, save_json, save_npz
from mrsisr.study.cache import StageOutput, current, publish, stage_output
from mrsisr.upscale import guide_slices

VALIDATION_STAGE = "validation"
REFERENCE_SIZE = 128
LR_SIZE = 32
GUIDE_TOKENS = ("flair", "t1", "t1w")
FIGURE_FILE = "figure4.npz"
RECORD_FILE = "validation.json"
EXPORTS = ("metrics.csv", "table2.csv", "table2_by_kind.csv", "statistics.csv", "slices.csv", FIGURE_FILE, RECORD_FILE)
#: The paper's 7T validation (two glioblastoma patients of the open Vienna 7T 3D-CRT-MRSI data): mean MSE.
PAPER_MSE = {"model": 0.0016, "spline": 0.0035, "nearest": 0.0044}


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


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (for the stage cache key)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def choose_model(run_dir: str | os.PathLike, guided_input: bool):
    """Return (model, description): the run's trained model, or the packaged unguided one when no guide exists.

    An unguided run model is used as it is (a guide, if any, is then unused). The study's model is
    FLAIR-guided: for real maps without a co-registered FLAIR/T1 the packaged default model is used if
    it is unguided; otherwise a ValueError says what is missing.
    """
    from mrsisr.network.model import is_guided, load_model

    trained = current(run_dir, "model")
    model = load_model(trained.path / "model.keras")
    if guided_input or not is_guided(model):
        return model, f"the run's trained model ({trained.key})"
    fallback = load_model(default_model.default_model_path())
    if not is_guided(fallback):
        return fallback, "the packaged unguided default model (no guide available)"
    raise ValueError(
        "the run's model is guided but no FLAIR/T1 guide was given: give mrsi_guide (or a flair/t1 file "
        "beside the maps), or package an unguided default model (scripts/train_default_model.py)"
    )


def run_validation(
    run_dir: str | os.PathLike,
    mrsi_dir: str = "",
    mrsi_guide: str = "",
    seed: int = 0,
    methods: Sequence[str] = ("nearest", "spline"),
    min_brain_fraction: float = 0.3,
    standin_grade: str = "HGG",
    standin_noise: float = 0.05,
) -> StageOutput:
    """Run (or reuse) the ``validation`` stage: the protocol on every map, metrics, tables and Figure 4 data.

    With an empty ``mrsi_dir`` the stand-in (:mod:`mrsisr.mrsi.standin_7t`) is simulated and written as
    NIfTI into the stage folder, then read back through the same path as real files. The cache key
    covers every parameter, the bytes of real input files and of the packaged default model, and the
    key of the ``model`` stage.
    """
    from mrsisr.network.model import is_guided, predict
    from mrsisr.stages import evaluation

    params: dict = {
        "mrsi_dir": str(mrsi_dir),
        "mrsi_guide": str(mrsi_guide),
        "seed": int(seed),
        "methods": list(methods),
        "min_brain_fraction": float(min_brain_fraction),
        "lpips_weights": evaluation.lpips_weights_digest(),
        "packaged_model": file_digest(default_model.DEFAULT_MODEL) if default_model.DEFAULT_MODEL.is_file() else "",
    }
    if mrsi_dir:
        subjects = find_mrsi_files(mrsi_dir)
        if mrsi_guide:
            if len(subjects) != 1:
                raise ValueError(
                    f"mrsi_guide {mrsi_guide} given for {len(subjects)} subjects; put one flair file per subject folder"
                )
            next(iter(subjects.values()))["guide"] = Path(mrsi_guide)
        params["files"] = {s: {r: file_digest(p) for r, p in files.items()} for s, files in subjects.items()}
    else:
        params |= {"standin_grade": standin_grade, "standin_noise": float(standin_noise)}
    trained = current(run_dir, "model")
    output = stage_output(run_dir, VALIDATION_STAGE, params, [trained.key])
    if not output.complete:
        if not mrsi_dir:
            paths = write_standin(output.path / "standin", make_standin(seed, standin_grade, standin_noise))
            subjects = {"standin": {**{k: p for k, p in paths.items() if k != "flair"}, "guide": paths["flair"]}}
        grade = standin_grade if not mrsi_dir else "unknown"
        parts = []
        for subject, files in subjects.items():
            guide = load_mrsi_volume(files["guide"], guide=True) if "guide" in files else None
            for kind, path in files.items():
                if kind == "guide":
                    continue
                volume = load_mrsi_volume(path, metabolite=kind)
                if guide is not None:
                    check_same_field_of_view(volume, guide)
                parts.append(validation_slices(volume, subject, grade, min_brain_fraction, guide))
        hr, lr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        guides = None if any(p[2] is None for p in parts) else np.concatenate([p[2] for p in parts])
        meta = pd.concat([p[3] for p in parts], ignore_index=True)
        model, model_description = choose_model(run_dir, guides is not None)
        predictions = {evaluation.REFERENCE_METHOD: predict(model, lr, guides if is_guided(model) else None)}
        predictions |= evaluation.baseline_predictions(lr, methods)
        metrics = evaluation.evaluate_predictions(predictions, hr, meta)
        evaluation.write_results(output.path, metrics)
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
        save_json(
            output.path / RECORD_FILE,
            {
                "is_standin": not mrsi_dir,
                "data": STANDIN_LABEL if not mrsi_dir else f"MRSI maps from {mrsi_dir}",
                "data_short": "STAND-IN (simulated)" if not mrsi_dir else "real MRSI",
                "model": model_description,
                "guided": bool(is_guided(model)),
                "n_slices": int(len(meta)),
                "subjects": sorted(subjects),
            },
        )
        output.mark_complete()
    publish(run_dir, output, exports=EXPORTS)
    return output


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean MSE of each method here beside the paper's 7T validation (NaN where the paper has none)."""
    ours = summary.set_index("method")["mse_mean"]
    return pd.DataFrame({"MSE, paper (7T, 2 patients)": pd.Series(PAPER_MSE), "MSE, here": ours}).reindex(ours.index)


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


def plot_figure4(data: dict, methods: Sequence[str], title: str) -> plt.Figure:
    """Figure 4: per metabolite, the guide (first row) or the 32 x 32 input, the reference, the upscaled maps, errors.

    Parameters
    ----------
    data : dict
        The arrays of ``figure4.npz`` (``reference``, ``lowres``, ``guide``, ``kinds``, ``pred_<method>``).
    methods : sequence of str
        Methods to show, e.g. ``("model", "spline", "nearest")``.
    title : str
        Figure title (says "STAND-IN" for the simulated volume).
    """
    from mrsisr.scoring.metrics import error_maps

    kinds = list(data["kinds"])
    n_cols = 2 + 2 * len(methods)
    fig, axes = plt.subplots(len(kinds), n_cols, figsize=(1.7 * n_cols, 1.9 * len(kinds) + 0.6), squeeze=False)
    for row, kind in enumerate(kinds):
        reference = data["reference"][row]
        has_anatomy = row == 0 and "guide" in data
        first = ("anatomy (guide)", data["guide"][row]) if has_anatomy else ("input 32x32", data["lowres"][row])
        panels = [first, (f"{kind} reference", reference)]
        panels += [(method, np.clip(data[f"pred_{method}"][row], 0, 1)) for method in methods]
        for col, (label, image) in enumerate(panels):
            axes[row, col].imshow(
                image.T, origin="lower", cmap="gray" if col == 0 and has_anatomy else "viridis", vmin=0, vmax=1
            )
            axes[row, col].set_title(label, fontsize=7)
        errors = [error_maps(data[f"pred_{method}"][row], reference) for method in methods]
        limit = max(float(np.percentile(np.abs(e), 99.5)) for e in errors) or 1.0
        for offset, (method, error) in enumerate(zip(methods, errors, strict=True)):
            mse = float(np.mean(error**2))
            ax = axes[row, len(panels) + offset]
            ax.imshow(error.T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{method} error\nMSE {mse:.2g} RMSE {np.sqrt(mse):.2g}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
