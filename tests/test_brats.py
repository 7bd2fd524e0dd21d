"""Tests of the BraTS 2020 loader on a tiny fake BraTS tree (mrsisr.anatomy.brats)."""

import nibabel as nib
import numpy as np
import pytest

from mrsisr.anatomy.brats import find_cases
from mrsisr.anatomy.subject import load_subject

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # BraTS volumes are stored left-posterior-superior


def _write(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), LPS), path)


def _case(folder, name, seg_name=None, suffix=".nii.gz", skip=()):
    case = folder / name
    case.mkdir(parents=True)
    x, y, z = np.meshgrid(*[np.arange(n) - n / 2 for n in (16, 16, 12)], indexing="ij")
    brain = x**2 + y**2 + z**2 < 30
    seg = np.zeros(brain.shape, np.uint8)
    seg[8:10, 8:10, 6:8] = 4
    seg[9, 9, 7] = 1
    seg[7, 8, 6] = 2
    volumes = {"t1": brain * 100.0 + x, "flair": brain * 50.0, "seg": seg}
    for kind, data in volumes.items():
        if kind in skip:
            continue
        file_name = seg_name if (kind == "seg" and seg_name) else f"{name}_{kind}{suffix}"
        _write(case / file_name, data.astype(np.float32 if kind != "seg" else np.uint8))
    return case


def _mapping(folder, rows):
    lines = ["Grade,BraTS_2019_subject_ID,BraTS_2020_subject_ID"] + [f"{g},x,{s}" for s, g in rows]
    (folder / "name_mapping.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def kaggle_tree(tmp_path):
    """The Kaggle copy: two extra folder levels, one .nii case, case 355's misnamed mask."""
    data = tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    _case(data, "BraTS20_Training_001")
    _case(data, "BraTS20_Training_002", suffix=".nii")
    _case(data, "BraTS20_Training_355", seg_name="W39_1998.09.19_Segm.nii")
    _mapping(data, [("BraTS20_Training_001", "HGG"), ("BraTS20_Training_002", "LGG"), ("BraTS20_Training_355", "HGG")])
    return tmp_path, data


def test_finds_cases_grades_and_misnamed_mask_through_extra_levels(kaggle_tree):
    root, data = kaggle_tree
    cases = find_cases(root)
    assert [c.subject for c in cases] == ["BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_355"]
    assert [c.grade for c in cases] == ["HGG", "LGG", "HGG"]
    assert cases[1].t1.name == "BraTS20_Training_002_t1.nii"
    assert cases[2].seg == data / "BraTS20_Training_355" / "W39_1998.09.19_Segm.nii"
    assert [c.subject for c in find_cases(data, n_subjects=2)] == ["BraTS20_Training_001", "BraTS20_Training_002"]


def test_a_case_loads_as_ras_subject(kaggle_tree):
    case = find_cases(kaggle_tree[0])[2]
    subject = load_subject(case.t1, case.flair, case.seg, grade=case.grade)
    raw = np.asarray(nib.load(case.seg).dataobj)
    np.testing.assert_array_equal(subject["labels"], raw[::-1, ::-1, :])  # LPS -> RAS flips x and y
    assert subject["grade"] == "HGG" and not subject["synthetic_flair"] and not subject["synthetic_tumour"]


def test_empty_or_misnamed_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_cases(tmp_path / "missing")
    with pytest.raises(ValueError, match="no BraTS20_Training_XXX case folders"):
        find_cases(tmp_path)
    _case(tmp_path, "BraTS2020_case_1")
    with pytest.raises(ValueError, match="no BraTS20_Training_XXX case folders"):
        find_cases(tmp_path)


def test_missing_modality_grade_table_or_grade_is_named(tmp_path):
    case = _case(tmp_path, "BraTS20_Training_004", skip=("flair",))
    with pytest.raises(FileNotFoundError, match="name_mapping.csv"):
        find_cases(tmp_path)
    _mapping(tmp_path, [("BraTS20_Training_004", "HGG")])
    with pytest.raises(FileNotFoundError, match=f"{case}: no BraTS20_Training_004_flair"):
        find_cases(tmp_path)
    _mapping(tmp_path, [("BraTS20_Training_009", "HGG")])
    with pytest.raises(ValueError, match="no grade for case BraTS20_Training_004"):
        find_cases(tmp_path)
    _mapping(tmp_path, [("BraTS20_Training_004", "GBM")])
    with pytest.raises(ValueError, match="unknown grade"):
        find_cases(tmp_path)
