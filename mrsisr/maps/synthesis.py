"""Synthetic metabolite maps from tissue fractions and tumour labels (Table 1 and the formula).

Normal tissue, per voxel::

    C_m = f_GM * C_m^GM + f_WM * C_m^WM + f_CSF * 0          (m in tCho, tCr, NAA)

with the subject's concentrations ``C^GM`` and ``C^WM`` drawn once per subject, uniformly inside the
literature ranges of ``data/metabolites.yaml``. Tumour labels (BraTS convention) replace the tissue
model where they lie (the segmentation leaves the tissue fractions at zero there):

- enhancing tumour (4), and the non-enhancing core (1) of low-grade gliomas: ``tCr = C_tCr^WM``,
  ``tCho = r_Cho/Cr * tCr``, ``NAA = tCho / r_Cho/NAA``, where ``r`` are concentration ratios obtained
  from the clinical peak ratios (``r = peak ratio * 3 / 9``, choline having 9 protons and creatine and
  NAA 3). LGG draws each peak ratio uniformly between the low end and the mean of its reported range,
  HGG between the mean and the high end;
- necrotic core (1) of high-grade gliomas: all three at ``necrosis_fraction`` of white matter;
- oedema (2): white-matter concentrations times ``oedema_dilution`` (ratios near normal).

The ratio maps are ratios of the concentration maps, set to 0 where the denominator is below
``ratio_floor_mM``.

``tissue_model`` chooses what the tissue fractions are: ``"partial_volume"`` (default) uses them as
given; ``"hard"`` first replaces them by hard classes, each voxel wholly the tissue of its largest
fraction (FSL FAST's hard segmentation), which gives maps with only the pure-tissue concentrations and
sharp tissue borders, as a paper that "does not account for partial volume effects" would have.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

KINDS: tuple[str, ...] = ("tCho", "tCr", "NAA", "tCho/NAA", "tCho/tCr")
METABOLITES: tuple[str, ...] = ("tCho", "tCr", "NAA")
GRADES: tuple[str, ...] = ("LGG", "HGG")
TISSUE_MODELS: tuple[str, ...] = ("partial_volume", "hard")


@functools.cache
def literature_values() -> dict[str, Any]:
    """Return the parsed ``data/metabolites.yaml`` (concentrations, tumour ratios, assumptions)."""
    text = resources.files("mrsisr").joinpath("data/metabolites.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def table1() -> pd.DataFrame:
    """Table 1 as a DataFrame: one row per value, with its range and its source."""
    values = literature_values()
    rows = []
    for tissue, metabolites in values["concentrations"].items():
        for name, entry in metabolites.items():
            low, high = entry["range"]
            rows.append(
                {
                    "tissue": tissue,
                    "quantity": f"{name} (mM)",
                    "value": f"{entry['mean']:g} ({low:g}-{high:g})",
                    "source": entry["source"],
                }
            )
    for ratio, grades in values["tumour_peak_ratios"].items():
        for grade, entry in grades.items():
            low, high = entry["range"]
            rows.append(
                {
                    "tissue": f"tumour, {grade}",
                    "quantity": f"{ratio} peak ratio",
                    "value": f"{low:g}-{high:g}",
                    "source": entry["source"],
                }
            )
    for name, entry in values["assumptions"].items():
        rows.append({"tissue": "assumption", "quantity": name, "value": f"{entry['value']:g}", "source": entry["note"]})
    return pd.DataFrame(rows)


def peak_to_concentration_ratio(numerator: str, denominator: str, peak_ratio: float) -> float:
    """Convert a clinical peak-area ratio into a concentration ratio using the proton counts."""
    protons = literature_values()["protons"]
    return peak_ratio * protons[denominator] / protons[numerator]


def draw_subject_values(grade: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw one subject's tissue concentrations and tumour ratios (see the module docstring)."""
    if grade not in GRADES:
        raise ValueError(f"grade must be one of {GRADES}, got {grade!r}")
    values = literature_values()
    drawn: dict[str, float] = {}
    for tissue in ("GM", "WM"):
        for name in METABOLITES:
            low, high = values["concentrations"][tissue][name]["range"]
            drawn[f"{tissue}_{name}"] = float(rng.uniform(low, high))
    for ratio, grades in values["tumour_peak_ratios"].items():
        low, high = grades[grade]["range"]
        mean = 0.5 * (low + high)
        peak = rng.uniform(low, mean) if grade == "LGG" else rng.uniform(mean, high)
        numerator, denominator = ratio.split("/")
        drawn[f"tumour_{ratio}"] = peak_to_concentration_ratio(numerator, denominator, float(peak))
    return drawn


def synthesize_maps(
    gm: np.ndarray,
    wm: np.ndarray,
    csf: np.ndarray,
    labels: np.ndarray,
    grade: str,
    rng: np.random.Generator,
    tissue_model: str = "partial_volume",
) -> dict[str, np.ndarray]:
    """Concentration and ratio maps of one subject, on arrays of any shape (2D slice or 3D volume).

    Parameters
    ----------
    gm, wm, csf : ndarray
        Partial-volume tissue fractions (zero outside the brain and on tumour labels).
    labels : ndarray of int
        BraTS tumour labels: 0 none, 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing tumour.
    grade : {"LGG", "HGG"}
        Tumour grade; sets the tumour ratios and whether label 1 is necrosis.
    rng : numpy.random.Generator
        Draws the subject's concentrations and ratios.
    tissue_model : {"partial_volume", "hard"}
        Use the fractions as given, or hard classes of them (:func:`hard_tissue_classes`).

    Returns
    -------
    dict of str to ndarray (float32)
        ``tCho``, ``tCr``, ``NAA`` (institutional units, about mM) and ``tCho/NAA``, ``tCho/tCr``.
    """
    shapes = {np.shape(a) for a in (gm, wm, csf, labels)}
    if len(shapes) != 1:
        raise ValueError(f"gm, wm, csf and labels must have one shape, got {sorted(shapes)}")
    unknown = set(np.unique(labels).tolist()) - {0, 1, 2, 4}
    if unknown:
        raise ValueError(f"labels hold values {sorted(unknown)} outside the BraTS labels 0, 1, 2, 4")
    if tissue_model not in TISSUE_MODELS:
        raise ValueError(f"unknown tissue_model {tissue_model!r}; valid: {', '.join(TISSUE_MODELS)}")
    if tissue_model == "hard":
        gm, wm, csf = hard_tissue_classes(gm, wm, csf)
    values = draw_subject_values(grade, rng)
    assumptions = {k: v["value"] for k, v in literature_values()["assumptions"].items()}
    gm, wm = np.asarray(gm, np.float64), np.asarray(wm, np.float64)
    white = {m: values[f"WM_{m}"] for m in METABOLITES}

    tumour_cr = assumptions["tumour_tCr_of_wm"] * white["tCr"]
    tumour_cho = values["tumour_tCho/tCr"] * tumour_cr
    tumour = {"tCr": tumour_cr, "tCho": tumour_cho, "NAA": tumour_cho / values["tumour_tCho/NAA"]}
    active = (labels == 4) | ((labels == 1) & (grade == "LGG"))
    necrotic = (labels == 1) & (grade == "HGG")
    oedema = labels == 2

    maps: dict[str, np.ndarray] = {}
    for name in METABOLITES:
        conc = gm * values[f"GM_{name}"] + wm * white[name]  # CSF contributes 0
        conc = np.where(active, tumour[name], conc)
        conc = np.where(necrotic, assumptions["necrosis_fraction"] * white[name], conc)
        conc = np.where(oedema, assumptions["oedema_dilution"] * white[name], conc)
        maps[name] = conc
    maps.update(ratio_maps(maps, assumptions["ratio_floor_mM"]))
    return {kind: maps[kind].astype(np.float32) for kind in KINDS}


def hard_tissue_classes(gm: np.ndarray, wm: np.ndarray, csf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard classes from partial-volume fractions: 1 for the largest fraction of each voxel, 0 elsewhere.

    Voxels whose fractions are all zero (outside the brain, tumour) stay zero; ties go to GM, then WM.
    """
    stacked = np.stack([np.asarray(a, np.float64) for a in (gm, wm, csf)])
    winner = np.where(stacked.sum(axis=0) > 0, stacked.argmax(axis=0), -1)
    hard_gm, hard_wm, hard_csf = ((winner == tissue).astype(np.float64) for tissue in range(3))
    return hard_gm, hard_wm, hard_csf


def normalise_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide each map (last two axes) by its maximum; return the maps and the maxima (0 stays 0)."""
    scale = maps.max(axis=(-2, -1))
    safe = np.where(scale > 0, scale, 1.0)
    return (maps / safe[..., None, None]).astype(np.float32), scale.astype(np.float64)


def ratio_maps(concentrations: dict[str, np.ndarray], floor: float) -> dict[str, np.ndarray]:
    """``tCho/NAA`` and ``tCho/tCr`` from concentration maps; 0 where the denominator is below ``floor``."""
    ratios = {}
    for kind in ("tCho/NAA", "tCho/tCr"):
        numerator, denominator = (concentrations[name] for name in kind.split("/"))
        valid = denominator >= floor
        ratios[kind] = np.where(valid, numerator / np.where(valid, denominator, 1.0), 0.0)
    return ratios
