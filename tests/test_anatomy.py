"""Tests of NIfTI subjects (anatomy.subject, anatomy.nifti) and the cached segmentation stage."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from mrsisr.anatomy.cohort import cohort_specs
from mrsisr.anatomy.phantom import make_phantom
from mrsisr.anatomy.subject import load_subject
from mrsisr.study.profiles import load_profile


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, "HGG")


def _write(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine), path)
    return path


def test_any_orientation_is_reoriented_to_ras(tmp_path, phantom):
    las = np.diag([-2.0, 2.0, 2.0, 1.0])  # x runs right -> left on disk
    t1 = _write(tmp_path / "t1.nii.gz", phantom["t1"][::-1], las)
    flair = _write(tmp_path / "flair.nii.gz", phantom["flair"][::-1], las)
    seg = _write(tmp_path / "seg.nii.gz", phantom["labels"][::-1], las)
    subject = load_subject(t1, flair, seg, voxel_mm=2.0)
    np.testing.assert_array_equal(subject["t1"], phantom["t1"])
    np.testing.assert_array_equal(subject["labels"], phantom["labels"])
    assert subject["grade"] == "HGG"
    n_x = phantom["t1"].shape[0]
    expected = np.diag([2.0, 2.0, 2.0, 1.0])
    expected[0, 3] = -2.0 * (n_x - 1)  # RAS+: voxel 0 is the file's last x voxel
    np.testing.assert_array_equal(subject["affine"], expected)
    assert subject["affine"].dtype == np.float64
    tissue = subject["brain"] & (subject["labels"] == 0)
    total = subject["gm"] + subject["wm"] + subject["csf"]
    np.testing.assert_allclose(total[tissue], 1.0, atol=1e-4)
    assert not total[~tissue].any()  # fractions always come back, zero on the tumour and background


def test_voxel_size_is_resampled(tmp_path, phantom):
    t1 = _write(tmp_path / "t1.nii", phantom["t1"][:40, :40, :30])
    seg = _write(tmp_path / "seg.nii", phantom["labels"][:40, :40, :30])
    subject = load_subject(t1, seg=seg, voxel_mm=1.0)
    assert subject["t1"].shape == (80, 80, 60)
    np.testing.assert_array_equal(subject["voxel_mm"], [1.0, 1.0, 1.0])
    # output voxel j sits at input voxel (j + 0.5) / 2 - 0.5: the grids share their outer edges
    np.testing.assert_allclose(subject["affine"], [[1, 0, 0, -0.5], [0, 1, 0, -0.5], [0, 0, 1, -0.5], [0, 0, 0, 1]])


def test_an_implausible_segmentation_is_refused_naming_the_t1(tmp_path, phantom):
    inverted = np.where(phantom["brain"], phantom["t1"].max() - phantom["t1"], 0.0)  # a T2-like contrast
    t1 = _write(tmp_path / "sub01_t1.nii.gz", inverted)
    with pytest.raises(ValueError, match=f"{t1}: "):
        load_subject(t1, voxel_mm=2.0)


def test_a_label_map_renames_mask_values(tmp_path, phantom):
    t1 = _write(tmp_path / "t1.nii", phantom["t1"])
    labels = phantom["labels"].copy()
    labels[labels == 4] = 3  # BraTS 2023 convention
    seg = _write(tmp_path / "seg.nii", labels)
    subject = load_subject(t1, seg=seg, voxel_mm=2.0, label_map={3: 4})
    np.testing.assert_array_equal(subject["labels"], phantom["labels"])


def test_missing_flair_and_tumour_are_synthesised(tmp_path, phantom):
    healthy = np.where(phantom["labels"] > 0, phantom["t1"].max() * 0.6, phantom["t1"])
    t1 = _write(tmp_path / "t1.nii.gz", healthy)
    subject = load_subject(t1, voxel_mm=2.0, grade="LGG", seed=3)
    assert subject["synthetic_flair"] and subject["synthetic_tumour"] and subject["grade"] == "LGG"
    assert (subject["labels"] > 0).sum() > 100 and set(np.unique(subject["labels"])) <= {0, 1, 2, 4}
    tissue = subject["brain"] & (subject["labels"] == 0)
    flair = {t: np.median(subject["flair"][tissue & (subject[t] > 0.9)]) for t in ("csf", "gm", "wm")}
    assert flair["csf"] < flair["wm"] < flair["gm"]
    assert np.median(subject["flair"][subject["labels"] == 2]) > flair["gm"]
    assert np.all(subject["gm"][subject["labels"] > 0] == 0)


def _bytes(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, ok: _bytes(p, b"\x00" * 50), "not a readable NIfTI"),
        (lambda p, ok: _bytes(p.with_suffix(".nii.gz"), gzip.compress(ok.read_bytes())[:3000]), "not a readable NIfTI"),
        (lambda p, ok: _bytes(p, ok.read_bytes()[:-5000]), "not a readable NIfTI"),
        (lambda p, ok: _write(p, np.ones((10, 10), np.float32)), "expected a 3D volume, got 2 dimensions"),
        (lambda p, ok: _write(p, np.ones((4, 4, 4, 3), np.float32)), "got 4 dimensions"),
        (lambda p, ok: _write(p, np.zeros((10, 10, 10), np.float32)), "every voxel is zero"),
        (lambda p, ok: p.with_name("absent.nii"), "no such NIfTI file"),
    ],
    ids=["garbage", "truncated-gz", "truncated-nii", "2d", "4d", "all-zero", "missing"],
)
def test_bad_t1_files_are_named(tmp_path, make, message):
    ok = _write(tmp_path / "ok.nii", np.random.default_rng(0).random((20, 20, 20), np.float32))
    path = make(tmp_path / "bad.nii", ok)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        load_subject(path)
    assert str(path) in str(error.value)


def test_files_on_different_grids_are_refused(tmp_path, phantom):
    t1 = _write(tmp_path / "t1.nii", phantom["t1"])
    small = _write(tmp_path / "flair.nii", phantom["flair"][:-1])
    moved = np.diag([2.0, 2.0, 2.0, 1.0])
    moved[0, 3] = 5.0  # same shape, shifted 5 mm
    shifted = _write(tmp_path / "seg.nii", phantom["labels"], moved)
    with pytest.raises(ValueError, match=f"{small}: flair is not on the grid of the T1"):
        load_subject(t1, flair=small)
    with pytest.raises(ValueError, match=f"{shifted}: seg is not on the grid of the T1"):
        load_subject(t1, seg=shifted)


def test_unknown_labels_are_refused(tmp_path, phantom):
    t1 = _write(tmp_path / "t1.nii", phantom["t1"])
    labels = phantom["labels"].copy()
    labels[labels == 4] = 3
    seg = _write(tmp_path / "seg.nii", labels)
    with pytest.raises(ValueError, match=f"{seg}: unknown tumour label\\(s\\) 3; expected BraTS labels"):
        load_subject(t1, seg=seg)


def _params(**overrides):
    params = load_profile("ci")
    params.update({"n_subjects": 2, "hgg_fraction": 0.5, **overrides})
    return params


def test_cohort_seeds_and_grades_are_fixed_by_the_study_seed():
    specs = cohort_specs(_params(n_subjects=10))
    assert specs == cohort_specs(_params(n_subjects=10))
    assert sorted(s.grade for s in specs) == ["HGG"] * 5 + ["LGG"] * 5
    assert len({s.seed for s in specs}) == 10
    assert cohort_specs(_params(n_subjects=10, seed=1)) != specs
    with pytest.raises(ValueError, match="unknown anatomy_source 'mri'; valid sources: phantom, brats, nifti"):
        cohort_specs(_params(anatomy_source="mri"))
    with pytest.raises(ValueError, match="needs brats_root"):
        cohort_specs(_params(anatomy_source="brats"))
    with pytest.raises(ValueError, match="matches no files"):
        cohort_specs(_params(anatomy_source="nifti", nifti_glob="/nonexistent/*_t1.nii.gz"))
