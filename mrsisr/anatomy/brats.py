"""The BraTS 2020 training set: find its cases and their grades, load one case.

Accepted layouts: ``<root>/BraTS20_Training_XXX/BraTS20_Training_XXX_{t1,flair,seg}.nii[.gz]`` with
``name_mapping.csv`` beside the case folders, where ``<root>`` may also be a folder one or two levels
above (the Kaggle copy adds ``BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/``). Case 355's
tumour mask is misnamed ``W39_1998.09.19_Segm.nii`` in the official release; any single ``*Segm.nii*``
file in a case folder is taken as its mask.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

CASE_PATTERN = re.compile(r"^BraTS20_Training_\d{3}$")
MAPPING_FILE = "name_mapping.csv"


@dataclass(frozen=True)
class BratsCase:
    """Files and grade of one BraTS 2020 training case."""

    subject: str
    t1: Path
    flair: Path
    seg: Path
    grade: str


def find_case_folder_root(root: str | os.PathLike) -> Path:
    """Return the folder that holds the ``BraTS20_Training_XXX`` folders, searching two levels down.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    ValueError
        If no case folder is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"brats_root {root}: no such folder")
    for folder in (root, *sorted(root.glob("*")), *sorted(root.glob("*/*"))):
        if folder.is_dir() and any(CASE_PATTERN.match(p.name) and p.is_dir() for p in folder.iterdir()):
            return folder
    raise ValueError(f"brats_root {root}: no BraTS20_Training_XXX case folders found (searched two levels down)")


def read_grades(folder: Path) -> dict[str, str]:
    """Read ``name_mapping.csv``: BraTS 2020 subject id -> ``LGG`` | ``HGG``."""
    path = folder / MAPPING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BraTS grade table missing (it ships with the training data)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"Grade", "BraTS_2020_subject_ID"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns Grade and BraTS_2020_subject_ID")
    grades = {row["BraTS_2020_subject_ID"].strip(): row["Grade"].strip() for row in rows}
    bad = sorted({g for g in grades.values() if g not in ("LGG", "HGG")})
    if bad:
        raise ValueError(f"{path}: unknown grade(s) {', '.join(bad)}; expected LGG or HGG")
    return grades


def _modality(folder: Path, name: str) -> Path:
    for suffix in (".nii.gz", ".nii"):
        path = folder / f"{folder.name}_{name}{suffix}"
        if path.is_file():
            return path
    if name == "seg":
        misnamed = sorted(folder.glob("*Segm.nii*"))
        if len(misnamed) == 1:
            return misnamed[0]
    raise FileNotFoundError(f"{folder}: no {folder.name}_{name}.nii[.gz] in this BraTS case folder")


def find_cases(root: str | os.PathLike, n_subjects: int = 0) -> list[BratsCase]:
    """List the BraTS 2020 training cases under ``root`` in case order.

    Parameters
    ----------
    root : path-like
        The training folder or a folder up to two levels above it.
    n_subjects : int
        Keep the first ``n_subjects`` cases (0 = all).

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing folder, grade table or modality file, or a case without a grade.
    """
    folder = find_case_folder_root(root)
    grades = read_grades(folder)
    cases = []
    case_folders = sorted(p for p in folder.iterdir() if p.is_dir() and CASE_PATTERN.match(p.name))
    for case in case_folders[: n_subjects or None]:
        if case.name not in grades:
            raise ValueError(f"{folder / MAPPING_FILE}: no grade for case {case.name}")
        cases.append(
            BratsCase(
                subject=case.name,
                t1=_modality(case, "t1"),
                flair=_modality(case, "flair"),
                seg=_modality(case, "seg"),
                grade=grades[case.name],
            )
        )
    return cases
