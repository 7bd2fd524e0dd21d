"""The study on two map settings: this run's maps beside a recorded run on the other setting.

The paper leaves open how its maps were made (one resized slice or a slab, hard classes or partial volume,
the field of view); notebook 02's calibration picks the paper-faithful reading, and the study's first build
used physically motivated maps (a 10 mm slab of partial-volume anatomy on a 220 mm field of view). Training a
second network on the other setting does not fit the demo's 30-minute book, so ``scripts/record_setting_run.py``
runs it separately and ships its test scores with their provenance in ``mrsisr/data/setting_run.json``;
notebook 04 sets them beside this run's scores with :func:`setting_comparison`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mrsisr.scoring.tables import METRIC_FORMATS
from mrsisr.study import cache

SETTING_RECORD = Path(__file__).resolve().parents[1] / "data" / "setting_run.json"
SETTING_FIELDS = ("anatomy_voxel_mm", "slice_thickness_mm", "tissue_model", "fov_mm", "lowres_method", "map_noise")
COMPARED = ("model", "spline", "nearest")
METRICS = ("psnr", "ssim", "lpips")
RECORD_FIELDS = ("setting", "scores", "profile", "command", "training", "git_commit", "date_utc")
METHOD_LABELS = {"nearest": "nearest neighbour", "spline": "cubic spline", "model": "network"}
RECIPE_IGNORED = ("time_budget_min", "cache_version")  # the record reports the epochs a budget let it run
LOWRES_NAMES = {"kspace": "k-space truncation", "hamming": "Hamming-windowed truncation", "block": "4 x 4 block means"}


def map_setting(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that define how a run's maps are made (anatomy grid, slab, tissue model, field of view...)."""
    missing = [name for name in SETTING_FIELDS if name not in params]
    if missing:
        raise KeyError(f"the parameters lack the map-setting field(s) {', '.join(missing)}")
    return {name: params[name] for name in SETTING_FIELDS}


def run_setting(run_dir: str | Path) -> dict[str, Any]:
    """The map setting of a run: read from its current segmentation (anatomy grid) and synthesis outputs."""
    return map_setting(cache.current(run_dir, "segmentation").params | cache.current(run_dir, "synthesis").params)


def describe_setting(setting: Mapping[str, Any]) -> str:
    """A map setting in words, e.g. ``one 2 mm slice, hard tissue classes, 240 mm field of view, k-space
    truncation``."""
    voxel = f"{setting['anatomy_voxel_mm']:g} mm"
    thickness = float(setting["slice_thickness_mm"])
    slab = f"one {voxel} slice" if thickness == 0 else f"a {thickness:g} mm slab of {voxel} anatomy"
    tissue = "hard tissue classes" if setting["tissue_model"] == "hard" else "partial-volume tissue fractions"
    parts = [slab, tissue, f"{setting['fov_mm']:g} mm field of view", LOWRES_NAMES[setting["lowres_method"]]]
    if float(setting["map_noise"]) > 0:
        parts.append(f"noise SD {setting['map_noise']:g}")
    return ", ".join(parts)


def method_scores(
    summary: pd.DataFrame, methods: tuple[str, ...] = COMPARED, metrics: tuple[str, ...] = METRICS
) -> dict[str, dict[str, float]]:
    """Mean ``metrics`` of ``methods`` from an evaluation ``summary`` (``table2.csv``: one row per method), with
    the numbers of maps and subjects behind each.

    Raises
    ------
    KeyError
        If the summary has no row for one of ``methods``.
    """
    table = summary.set_index("method")
    absent = [method for method in methods if method not in table.index]
    if absent:
        raise KeyError(f"the evaluation summary has no row for {', '.join(absent)}")
    return {
        method: {metric: float(table.loc[method, f"{metric}_mean"]) for metric in metrics}
        | {"n_maps": int(table.loc[method, "n_maps"]), "n_subjects": int(table.loc[method, "n_subjects"])}
        for method in methods
    }


def recipe_differences(
    recorded: Mapping[str, Any], training: Mapping[str, Any], ignored: tuple[str, ...] = RECIPE_IGNORED
) -> dict[str, tuple[Any, Any]]:
    """The training parameters of this run that a recorded run had at another value.

    Parameters
    ----------
    recorded : mapping
        The recorded run's parameters (its record's ``parameters``: every parameter of its profile).
    training : mapping
        This run's training parameters (``cache.current(run_dir, "training").params``).
    ignored : tuple of str
        Names left out: the time budget (the record reports the epochs it ran) and the cache version.

    Returns
    -------
    dict
        ``name -> (recorded value, this run's value)``, empty when the two runs trained with the same recipe.
    """
    return {
        name: (recorded.get(name), value)
        for name, value in training.items()
        if name not in ignored and recorded.get(name) != value
    }


def describe_recipe_differences(differences: Mapping[str, tuple[Any, Any]]) -> str:
    """One sentence on whether a recorded run trained with this run's recipe, naming every difference."""
    if not differences:
        return "The separate run trained with this run's recipe (every training parameter but the time budget)."
    listed = "; ".join(f"{name}: {old} there, {new} here" for name, (old, new) in differences.items())
    return f"The separate run trained with another recipe, so its rows differ by more than the maps ({listed})."


def recipe_note(record: Mapping[str, Any], run_dir: str | Path) -> str:
    """Whether a recorded run trained with the recipe of the run in ``run_dir`` (its current training output)."""
    training = cache.current(run_dir, "training").params
    return describe_recipe_differences(recipe_differences(record["parameters"], training))


def load_setting_record(path: str | Path = SETTING_RECORD) -> dict[str, Any] | None:
    """The shipped record of the run on the other map setting, or None when there is none.

    Raises
    ------
    ValueError
        If the file is not a record as ``scripts/record_setting_run.py`` writes it (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    missing = [key for key in RECORD_FIELDS if key not in record]
    if missing:
        raise ValueError(f"{path}: not a setting-run record, it lacks {', '.join(missing)}")
    return record


def setting_comparison(runs: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Mapping[str, float]]]]) -> pd.DataFrame:
    """A display table: per run and method (nearest, spline, network) the mean PSNR, SSIM and LPIPS, and the
    network's PSNR gain over the spline; its caption says each run's map setting in words.

    Parameters
    ----------
    runs : mapping
        Row label (e.g. ``this run (demo profile)``) to ``(setting, scores)``, as :func:`map_setting` and
        :func:`method_scores` return them.
    """
    rows, settings = [], []
    for label, (setting, scores) in runs.items():
        settings.append(f"{label}: {describe_setting(setting)}")
        gain = scores["model"]["psnr"] - scores["spline"]["psnr"]
        for method in ("nearest", "spline", "model"):
            row = {"Run": label, "Method": METHOD_LABELS[method]}
            for metric in METRICS:
                row[METRIC_FORMATS[metric].header] = METRIC_FORMATS[metric].value(scores[method][metric])
            row["Network minus spline, PSNR (dB)"] = METRIC_FORMATS["psnr"].value(gain) if method == "model" else None
            row["Test maps"] = scores[method]["n_maps"]
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["Run", "Method"])
    table.attrs["caption"] = "Mean over each run's test maps. Maps of " + "; ".join(settings) + "."
    return table
