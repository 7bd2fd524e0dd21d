"""Tests of the BraTS loader on tiny fake trees of every release layout (mrsisr.anatomy.brats)."""

import nibabel as nib
import numpy as np
import pytest

from mrsisr.anatomy.brats import LAYOUTS, find_cases
from mrsisr.anatomy.cohort import build_subject, cohort_specs
from mrsisr.anatomy.subject import load_subject
from mrsisr.study.profiles import load_profile

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # BraTS volumes are stored left-posterior-superior
SHAPE = (24, 24, 20)


def tiny_brain(seed=0):
    """A 1 mm ball 'brain': WM core, GM shell, CSF rim (plausible shares), with noise and a small tumour."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(k) - (k - 1) / 2 for k in SHAPE], indexing="ij")
    r = np.sqrt(x**2 + y**2 + (1.2 * z) ** 2)
    t1 = np.select([r < 7.2, r < 9.4, r < 10.2], [100.0, 70.0, 30.0], 0.0)
    t1 = np.where(t1 > 0, t1 + rng.normal(0.0, 3.0, SHAPE), 0.0)
    seg = np.zeros(SHAPE, np.uint8)
    seg[(x - 2) ** 2 + y**2 + z**2 < 12] = 2
    seg[(x - 2) ** 2 + y**2 + z**2 < 5] = 4
    seg[(x - 2) ** 2 + y**2 + z**2 < 1.0] = 1
    return {"t1": t1, "flair": np.where(t1 > 0, 130.0 - t1 + 50.0 * (seg > 0), 0.0), "seg": seg}


def _case(folder, name, names=("t1", "flair", "seg"), sep="_", suffix=".nii.gz", seg_name=None, enhancing=4):
    """Write a fake case ``folder/name`` with the files ``<name><sep><kind><suffix>`` (T1, FLAIR, seg order)."""
    case = folder / name
    case.mkdir(parents=True)
    volumes = tiny_brain()
    volumes["seg"] = np.where(volumes["seg"] == 4, enhancing, volumes["seg"]).astype(np.uint8)
    for kind, file_kind in zip(("t1", "flair", "seg"), names, strict=True):
        if file_kind is None:
            continue
        file_name = seg_name if (kind == "seg" and seg_name) else f"{name}{sep}{file_kind}{suffix}"
        data = volumes[kind].astype(np.uint8 if kind == "seg" else np.int16)
        nib.save(nib.Nifti1Image(data, LPS), case / file_name)
    return case


def _mapping(folder, rows):
    lines = ["Grade,BraTS_2019_subject_ID,BraTS_2020_subject_ID"] + [f"{g},x,{s}" for s, g in rows]
    (folder / "name_mapping.csv").write_text("\n".join(lines) + "\n")


def _summary(cases):
    return [(c.subject, c.grade, c.grade_source, c.release) for c in cases]


def test_brats_2017_2018_with_grade_folders_under_a_kaggle_level(tmp_path):
    data = tmp_path / "MICCAI_BraTS_2018_Data_Training"
    _case(data / "HGG", "Brats18_CBICA_AAB_1")
    _case(data / "LGG", "Brats18_2013_0_1")
    _case(tmp_path / "loose", "Brats17_2013_27_1")  # no grade folder: graded from its labels
    cases = find_cases(tmp_path)
    assert _summary(cases) == [
        ("Brats17_2013_27_1", None, "labels", "BraTS 2017/2018"),
        ("Brats18_2013_0_1", "LGG", "release", "BraTS 2017/2018"),
        ("Brats18_CBICA_AAB_1", "HGG", "release", "BraTS 2017/2018"),
    ]
    assert cases[2].t1 == data / "HGG" / "Brats18_CBICA_AAB_1" / "Brats18_CBICA_AAB_1_t1.nii.gz"
    assert all(c.label_map == () for c in cases)


def test_brats_2019_grade_folders(tmp_path):
    data = tmp_path / "MICCAI_BraTS_2019_Data_Training"
    _case(data / "LGG", "BraTS19_TMC_09043_1")
    _case(data / "HGG", "BraTS19_CBICA_AAB_1")
    assert _summary(find_cases(tmp_path)) == [
        ("BraTS19_CBICA_AAB_1", "HGG", "release", "BraTS 2019"),
        ("BraTS19_TMC_09043_1", "LGG", "release", "BraTS 2019"),
    ]


@pytest.fixture
def kaggle_2020(tmp_path):
    """The Kaggle copy of 2020: two extra folder levels, one .nii case, case 355's misnamed mask."""
    data = tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    _case(data, "BraTS20_Training_001")
    _case(data, "BraTS20_Training_002", suffix=".nii")
    _case(data, "BraTS20_Training_355", seg_name="W39_1998.09.19_Segm.nii")
    _mapping(data, [("BraTS20_Training_001", "HGG"), ("BraTS20_Training_002", "LGG"), ("BraTS20_Training_355", "HGG")])
    return tmp_path, data


def test_brats_2020_grades_from_name_mapping_and_misnamed_mask(kaggle_2020):
    root, data = kaggle_2020
    cases = find_cases(root)
    assert [(c.subject, c.grade, c.grade_source) for c in cases] == [
        ("BraTS20_Training_001", "HGG", "release"),
        ("BraTS20_Training_002", "LGG", "release"),
        ("BraTS20_Training_355", "HGG", "release"),
    ]
    assert cases[1].t1.name == "BraTS20_Training_002_t1.nii"
    assert cases[2].seg == data / "BraTS20_Training_355" / "W39_1998.09.19_Segm.nii"
    assert [c.subject for c in find_cases(data, n_subjects=2)] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    with pytest.warns(UserWarning, match="n_subjects = 5 asked for, but only 3 cases found; taking all 3"):
        assert len(find_cases(data, n_subjects=5)) == 3


def test_brats_2020_without_its_grade_table_is_graded_from_labels(tmp_path):
    _case(tmp_path, "BraTS20_Training_004")
    assert _summary(find_cases(tmp_path)) == [("BraTS20_Training_004", None, "labels", "BraTS 2020")]


def test_brats_2021_flat_and_under_a_kaggle_level(tmp_path):
    _case(tmp_path / "BraTS2021_Training_Data", "BraTS2021_00006")
    _case(tmp_path, "BraTS2021_00000")
    cases = find_cases(tmp_path)
    assert _summary(cases) == [
        ("BraTS2021_00000", None, "labels", "BraTS 2021"),
        ("BraTS2021_00006", None, "labels", "BraTS 2021"),
    ]
    assert cases[1].flair.name == "BraTS2021_00006_flair.nii.gz"


def test_brats_2023_files_and_enhancing_label_mapped_to_4(tmp_path):
    case = _case(tmp_path, "BraTS-GLI-00000-000", names=("t1n", "t2f", "seg"), sep="-", enhancing=3)
    (found,) = find_cases(tmp_path)
    assert (found.subject, found.grade, found.grade_source, found.release) == (
        "BraTS-GLI-00000-000",
        None,
        "labels",
        "BraTS 2023+",
    )
    assert (found.t1.name, found.flair.name) == ("BraTS-GLI-00000-000-t1n.nii.gz", "BraTS-GLI-00000-000-t2f.nii.gz")
    subject = load_subject(found.t1, found.flair, found.seg, label_map=found.label_map)
    assert set(np.unique(subject["labels"])) == {0, 1, 2, 4} and subject["grade"] == "HGG"
    with pytest.raises(ValueError, match="unknown tumour label\\(s\\) 3"):
        load_subject(found.t1, found.flair, case / "BraTS-GLI-00000-000-seg.nii.gz")  # without the map


def test_a_root_of_mixed_layouts_and_a_case_folder_as_root(tmp_path):
    _case(tmp_path, "Brats17_2013_27_1")
    _case(tmp_path, "BraTS2021_00006")
    gli = _case(tmp_path, "BraTS-GLI-00000-000", names=("t1n", "t2f", "seg"), sep="-", enhancing=3)
    releases = [c.release for c in find_cases(tmp_path)]
    assert releases == ["BraTS 2023+", "BraTS 2021", "BraTS 2017/2018"]
    assert [c.subject for c in find_cases(gli)] == ["BraTS-GLI-00000-000"]


def test_a_case_loads_as_ras_subject(kaggle_2020):
    case = find_cases(kaggle_2020[0])[2]
    subject = load_subject(case.t1, case.flair, case.seg, grade=case.grade)
    raw = np.asarray(nib.load(case.seg).dataobj)
    np.testing.assert_array_equal(subject["labels"], raw[::-1, ::-1, :])  # LPS -> RAS flips x and y
    assert subject["grade"] == "HGG" and not subject["synthetic_flair"] and not subject["synthetic_tumour"]
    # RAS+ affine of the grid: voxel (0, 0, 0) is the file's last x and y voxel
    np.testing.assert_allclose(subject["affine"], [[1, 0, 0, -23], [0, 1, 0, -23], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_a_folder_matching_no_layout_lists_the_known_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_cases(tmp_path / "missing")
    _case(tmp_path, "BraTS2020_case_1")
    with pytest.raises(ValueError, match="no BraTS case folders found") as error:
        find_cases(tmp_path)
    for layout in LAYOUTS:
        assert layout.describe() in str(error.value)
    assert "BraTS-GLI-NNNNN-NNN/<case>-{t1n,t2f,seg}.nii.gz" in str(error.value)


def test_missing_modality_bad_grade_table_and_duplicates_are_named(tmp_path):
    case = _case(tmp_path, "BraTS20_Training_004", names=("t1", None, "seg"))
    with pytest.raises(
        FileNotFoundError, match=f"{case}: no BraTS20_Training_004_flair.nii\\[.gz\\] in this BraTS 2020"
    ):
        find_cases(tmp_path)
    _case(tmp_path / "a", "BraTS20_Training_005")
    _mapping(tmp_path / "a", [("BraTS20_Training_009", "HGG")])
    with pytest.raises(ValueError, match="no grade for case BraTS20_Training_005"):
        find_cases(tmp_path / "a")
    _mapping(tmp_path / "a", [("BraTS20_Training_005", "GBM")])
    with pytest.raises(ValueError, match="unknown grade"):
        find_cases(tmp_path / "a")
    _case(tmp_path / "b", "BraTS2021_00001")
    _case(tmp_path / "c", "BraTS2021_00001")
    with pytest.raises(ValueError, match="found more than once: BraTS2021_00001"):
        find_cases(tmp_path)


def test_cohort_of_a_2023_case_maps_labels_and_grades_from_them(tmp_path):
    _case(tmp_path, "BraTS-GLI-00000-000", names=("t1n", "t2f", "seg"), sep="-", enhancing=3)
    params = load_profile("ci") | {"anatomy_source": "brats", "brats_root": str(tmp_path), "n_subjects": 0}
    (spec,) = cohort_specs(params)
    assert spec.grade is None and spec.label_map == ((3, 4),)
    arrays, row = build_subject(spec, 1.0, "dipy_hmrf")
    assert set(np.unique(arrays["labels"])) == {0, 1, 2, 4}
    assert (row["grade"], row["grade_source"], row["source"]) == ("HGG", "labels", "brats")
    assert 0.25 <= row["frac_gm"] <= 0.60 and 0.25 <= row["frac_wm"] <= 0.65 and 0.04 <= row["frac_csf"] <= 0.30
