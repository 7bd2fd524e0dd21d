"""Tests of build_subject (mrsisr.anatomy.cohort): one segmentation per subject, its outputs, and the figure."""

import matplotlib
import nibabel as nib
import numpy as np
import pytest

import mrsisr.anatomy.subject as subject_module
from mrsisr.anatomy.cohort import SubjectSpec, build_subject
from mrsisr.anatomy.figures import plot_subject_slice

matplotlib.use("Agg")

ARRAYS = {"t1", "flair", "labels", "brain", "voxel_mm", "gm", "wm", "csf", "affine"}
ROW = {"subject", "grade", "grade_source", "source", "seconds_anatomy", "seconds_segmentation"}
ROW |= {"frac_gm", "frac_wm", "frac_csf"}


@pytest.fixture
def count_segmentations(monkeypatch):
    calls = []
    original = subject_module.segment_tissues

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(subject_module, "segment_tissues", counting)
    return calls


@pytest.fixture(scope="module")
def phantom_built():
    return build_subject(SubjectSpec("phantom_000", "phantom", "HGG", 12), 2.0, "dipy_hmrf")


def test_a_phantom_is_segmented_once_and_scored(count_segmentations):
    arrays, row = build_subject(SubjectSpec("phantom_000", "phantom", "LGG", 3), 2.0, "dipy_hmrf")
    assert len(count_segmentations) == 1
    assert set(arrays) == ARRAYS | {"gm_true", "wm_true", "csf_true"}
    assert set(row) == ROW | {"dice_gm", "dice_wm", "dice_csf"}
    assert (row["grade"], row["grade_source"], row["source"]) == ("LGG", "drawn", "phantom")
    assert row["dice_gm"] >= 0.85 and row["dice_wm"] >= 0.88
    assert row["frac_gm"] + row["frac_wm"] + row["frac_csf"] == pytest.approx(1.0)
    assert arrays["affine"].shape == (4, 4) and arrays["affine"].dtype == np.float64


def test_a_nifti_subject_is_segmented_once_with_its_grade_from_labels(tmp_path, phantom_built, count_segmentations):
    arrays, _ = phantom_built
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(arrays["t1"], affine), tmp_path / "sub_t1.nii.gz")
    nib.save(nib.Nifti1Image(arrays["labels"], affine), tmp_path / "sub_seg.nii.gz")
    spec = SubjectSpec("sub", "nifti", None, 5, str(tmp_path / "sub_t1.nii.gz"), "", str(tmp_path / "sub_seg.nii.gz"))
    loaded, row = build_subject(spec, 2.0, "dipy_hmrf")
    assert len(count_segmentations) == 1
    assert set(loaded) == ARRAYS and set(row) == ROW
    assert (row["grade"], row["grade_source"]) == ("HGG", "labels")
    np.testing.assert_array_equal(loaded["affine"], affine)
    assert row["seconds_segmentation"] > 0


def test_plot_subject_slice_draws_five_panels_with_colorbars(phantom_built):
    arrays, _ = phantom_built
    k = int(np.argmax((arrays["labels"] > 0).sum(axis=(0, 1))))
    fig = plot_subject_slice(arrays, k, "phantom_000")
    images = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in images] == ["T1", "FLAIR", "GM", "WM", "CSF"]
    assert len(fig.axes) == 10  # five panels and five colorbars
    assert fig.get_size_inches()[0] <= 13.5
    with pytest.raises(ValueError, match="slice 999 is outside"):
        plot_subject_slice(arrays, 999)
    with pytest.raises(ValueError, match="needs the volumes gm"):
        plot_subject_slice({k: v for k, v in arrays.items() if k != "gm"}, 0)
