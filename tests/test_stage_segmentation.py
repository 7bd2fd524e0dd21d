"""Tests of the segmentation stage (mrsisr.stages.segmentation): artifacts, workers, cache reuse, NIfTI subjects."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrsisr.anatomy.phantom import make_phantom
from mrsisr.stages.segmentation import read_subject, run_anatomy_stage
from mrsisr.study import cache
from mrsisr.study.profiles import load_profile


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, "HGG")


def _write(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def _params(**overrides):
    params = load_profile("ci")
    params.update({"n_subjects": 2, "hgg_fraction": 0.5, **overrides})
    return params


def test_stage_writes_artifacts_and_does_not_depend_on_workers(tmp_path):
    serial = run_anatomy_stage(tmp_path / "a", _params(), workers=1, progress=False)
    parallel = run_anatomy_stage(tmp_path / "b", _params(), workers=2, progress=False)
    assert serial.key == parallel.key and serial.complete
    subjects = pd.read_csv(serial.path / "subjects.csv")
    assert list(subjects.columns) == ["subject", "grade", "source"]
    assert sorted(subjects["grade"]) == ["HGG", "LGG"] and set(subjects["source"]) == {"phantom"}
    dice = pd.read_csv(serial.path / "dice.csv")
    assert list(dice.columns) == ["subject", "dice_gm", "dice_wm", "dice_csf"]
    assert (dice[["dice_gm", "dice_wm"]] > 0.8).all().all()
    for name in subjects["subject"]:
        a, b = read_subject(serial, name), read_subject(parallel.path, name)
        assert set(a) >= {"t1", "flair", "labels", "brain", "gm", "wm", "csf", "voxel_mm", "gm_true"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")
    assert cache.current(tmp_path / "a", "anatomy").key == serial.key


def test_stage_reuses_a_complete_output(tmp_path):
    first = run_anatomy_stage(tmp_path, _params(n_subjects=1), workers=1, progress=False)
    npz = next(first.path.glob("*.npz"))
    stamp = npz.stat().st_mtime_ns
    again = run_anatomy_stage(tmp_path, _params(n_subjects=1), workers=1, progress=False)
    assert again.path == first.path and npz.stat().st_mtime_ns == stamp
    with pytest.raises(FileNotFoundError, match="no such subject"):
        read_subject(first, "phantom_999")


def test_stage_reads_a_glob_of_nifti_subjects(tmp_path, phantom):
    _write(tmp_path / "sub01_T1.nii.gz", phantom["t1"])
    _write(tmp_path / "sub01_seg.nii.gz", phantom["labels"])
    params = _params(anatomy_source="nifti", nifti_glob=str(tmp_path / "*_T1.nii.gz"), n_subjects=0)
    output = run_anatomy_stage(tmp_path / "run", params, workers=1, progress=False)
    subjects = pd.read_csv(output.path / "subjects.csv")
    assert subjects.to_dict("records") == [{"subject": "sub01", "grade": "HGG", "source": "nifti"}]
    assert pd.read_csv(output.path / "dice.csv").empty  # no ground truth outside the phantom cohort
    arrays = read_subject(output, "sub01")
    np.testing.assert_array_equal(arrays["labels"], phantom["labels"])
    assert np.all(arrays["gm"][phantom["labels"] > 0] == 0) and arrays["flair"].any()
