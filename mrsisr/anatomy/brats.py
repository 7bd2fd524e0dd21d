"""BraTS releases 2017 to 2023+: find their cases, grades and files under one folder.

Known layouts (:data:`LAYOUTS`), each case in its own folder named as the release names it:

- BraTS 2017/2018: ``Brats17_*`` / ``Brats18_*`` holding ``<case>_{t1,flair,seg}.nii[.gz]``; the case
  folders may sit in ``HGG/`` and ``LGG/`` folders, which give the grade.
- BraTS 2019: ``BraTS19_*``, same files, ``HGG/`` and ``LGG/`` folders.
- BraTS 2020: ``BraTS20_Training_XXX``, same files, grades in ``name_mapping.csv`` beside the case
  folders. Case 355's tumour mask is misnamed ``W39_1998.09.19_Segm.nii`` in the official release; any
  single ``*Segm.nii*`` file in a case folder is taken as its mask.
- BraTS 2021: ``BraTS2021_NNNNN`` with ``<case>_{t1,flair,seg}.nii.gz``; no grades.
- BraTS 2023+ (adult glioma): ``BraTS-GLI-NNNNN-NNN`` with ``<case>-{t1n,t2f,seg}.nii.gz`` (t1n = T1,
  t2f = FLAIR); no grades; the enhancing tumour is label 3 (the old 4), mapped back to 4 on loading
  (:attr:`BratsCase.label_map`).

The root may be a case folder itself, a folder of cases, or any folder up to :data:`SEARCH_DEPTH` levels
above them (the Kaggle copies add one or two levels, ``HGG``/``LGG`` one more), and it may hold cases of
several layouts. The grade comes from the release where it has one (``grade_source = "release"``), else
``grade`` is None and is taken from the tumour labels on loading (``"labels"``: HGG when an enhancing part
exists, :func:`mrsisr.anatomy.subject.grade_from_labels`).
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

MAPPING_FILE = "name_mapping.csv"
SEARCH_DEPTH = 4  # levels below the root at which case folders are looked for
GRADES = ("LGG", "HGG")


@dataclass(frozen=True)
class Layout:
    """How one BraTS release names its case folders and files, and where its grades are."""

    release: str
    pattern: re.Pattern
    example: str
    separator: str
    t1: str
    flair: str
    grade_from: str  # "folders" (HGG/ and LGG/ parents), "mapping" (name_mapping.csv) or "" (none)
    label_map: tuple[tuple[int, int], ...] = ()

    def describe(self) -> str:
        """One line naming the release, its case folders and its files."""
        files = f"<case>{self.separator}{{{self.t1},{self.flair},seg}}.nii.gz"
        return f"{self.release}: {self.example}/{files}"


LAYOUTS = (
    Layout("BraTS 2017/2018", re.compile(r"^Brats1[78]_\w+$"), "Brats17_*, Brats18_*", "_", "t1", "flair", "folders"),
    Layout("BraTS 2019", re.compile(r"^BraTS19_\w+$"), "BraTS19_*", "_", "t1", "flair", "folders"),
    Layout(
        "BraTS 2020", re.compile(r"^BraTS20_Training_\d{3}$"), "BraTS20_Training_XXX", "_", "t1", "flair", "mapping"
    ),
    Layout("BraTS 2021", re.compile(r"^BraTS2021_\d{5}$"), "BraTS2021_NNNNN", "_", "t1", "flair", ""),
    Layout(
        "BraTS 2023+",
        re.compile(r"^BraTS-GLI-\d{5}-\d{3}$"),
        "BraTS-GLI-NNNNN-NNN",
        "-",
        "t1n",
        "t2f",
        "",
        label_map=((3, 4),),
    ),
)


@dataclass(frozen=True)
class BratsCase:
    """Files and grade of one BraTS case.

    ``grade`` is ``"LGG"``/``"HGG"`` from the release (``grade_source = "release"``) or None, meaning
    that the grade is taken from the tumour labels on loading (``grade_source = "labels"``).
    ``label_map`` renames mask values to the BraTS 0/1/2/4 convention when loading (2023+: 3 -> 4).
    """

    subject: str
    t1: Path
    flair: Path
    seg: Path
    grade: str | None
    grade_source: str
    release: str
    label_map: tuple[tuple[int, int], ...] = ()


def known_layouts() -> str:
    """The layouts :func:`find_cases` knows, one per line, for error messages."""
    return "\n".join(f"  {layout.describe()}" for layout in LAYOUTS)


def layout_of(folder: Path) -> Layout | None:
    """The layout whose case-folder name ``folder`` matches, or None."""
    return next((layout for layout in LAYOUTS if layout.pattern.match(folder.name)), None)


def find_case_folders(root: Path, depth: int = SEARCH_DEPTH) -> list[tuple[Path, Layout]]:
    """Case folders of any known layout at ``root`` or up to ``depth`` levels below it (not inside cases)."""
    layout = layout_of(root)
    if layout is not None:
        return [(root, layout)]
    if depth == 0:
        return []
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        found += find_case_folders(child, depth - 1)
    return found


def read_grades(folder: Path) -> dict[str, str]:
    """Read ``name_mapping.csv``: BraTS 2020 subject id -> ``LGG`` | ``HGG``."""
    path = folder / MAPPING_FILE
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"Grade", "BraTS_2020_subject_ID"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns Grade and BraTS_2020_subject_ID")
    grades = {row["BraTS_2020_subject_ID"].strip(): row["Grade"].strip() for row in rows}
    bad = sorted({g for g in grades.values() if g not in GRADES})
    if bad:
        raise ValueError(f"{path}: unknown grade(s) {', '.join(bad)}; expected LGG or HGG")
    return grades


def release_grade(case: Path, layout: Layout) -> str | None:
    """The grade the release gives ``case`` (HGG/LGG parent folder, or name_mapping.csv), or None.

    Raises
    ------
    ValueError
        If the release's grade table exists but has no (valid) grade for the case.
    """
    if layout.grade_from == "folders" and case.parent.name.upper() in GRADES:
        return case.parent.name.upper()
    if layout.grade_from == "mapping" and (case.parent / MAPPING_FILE).is_file():
        grades = read_grades(case.parent)
        if case.name not in grades:
            raise ValueError(f"{case.parent / MAPPING_FILE}: no grade for case {case.name}")
        return grades[case.name]
    return None


def _modality(folder: Path, layout: Layout, name: str) -> Path:
    for suffix in (".nii.gz", ".nii"):
        path = folder / f"{folder.name}{layout.separator}{name}{suffix}"
        if path.is_file():
            return path
    if name == "seg":
        misnamed = sorted(folder.glob("*Segm.nii*"))
        if len(misnamed) == 1:
            return misnamed[0]
    raise FileNotFoundError(
        f"{folder}: no {folder.name}{layout.separator}{name}.nii[.gz] in this {layout.release} case folder"
    )


def load_case(folder: Path, layout: Layout) -> BratsCase:
    """Describe the case in ``folder`` (its files and grade), checking that its files exist."""
    grade = release_grade(folder, layout)
    return BratsCase(
        subject=folder.name,
        t1=_modality(folder, layout, layout.t1),
        flair=_modality(folder, layout, layout.flair),
        seg=_modality(folder, layout, "seg"),
        grade=grade,
        grade_source="release" if grade else "labels",
        release=layout.release,
        label_map=layout.label_map,
    )


def find_cases(root: str | os.PathLike, n_subjects: int = 0) -> list[BratsCase]:
    """List the BraTS cases of every known layout under ``root``, sorted by case name.

    Parameters
    ----------
    root : path-like
        A case folder, a folder of cases, or a folder up to :data:`SEARCH_DEPTH` levels above them.
    n_subjects : int
        Keep the first ``n_subjects`` cases (0 = all); asking for more than there are warns and takes all.

    Raises
    ------
    FileNotFoundError
        For a missing folder or modality file.
    ValueError
        If no case folder of a known layout is found (the message lists the layouts), a case name occurs
        twice, or a grade table is malformed or lacks a case.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"brats_root {root}: no such folder")
    folders = sorted(find_case_folders(root), key=lambda found: found[0].name)
    if not folders:
        raise ValueError(
            f"brats_root {root}: no BraTS case folders found (searched {SEARCH_DEPTH} levels down); "
            f"known layouts:\n{known_layouts()}"
        )
    names = [folder.name for folder, _ in folders]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"brats_root {root}: case(s) found more than once: {', '.join(twice)}")
    if n_subjects > len(folders):
        warnings.warn(
            f"brats_root {root}: n_subjects = {n_subjects} asked for, but only {len(folders)} cases found; "
            f"taking all {len(folders)}",
            stacklevel=2,
        )
    return [load_case(folder, layout) for folder, layout in folders[: n_subjects or None]]
