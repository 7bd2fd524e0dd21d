"""Tests of the segmentation stage (mrsisr.stages.segmentation): artifacts, workers, cache reuse, NIfTI subjects."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrsisr.anatomy.phantom import make_phantom
from mrsisr.stages.segmentation import SegmentationResult, read_subject, run
from mrsisr.study import cache
from mrsisr.study.profiles import load_profile, stage_parameters

FRACTIONS = ["frac_gm", "frac_wm", "frac_csf"]


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, "HGG")


def _write(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def _params(**overrides):
    values = {"n_subjects": 2, "hgg_fraction": 0.5, "anatomy_voxel_mm": 3.0, **overrides}
    return stage_parameters("segmentation", load_profile("ci", values))


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("serial")
    return run_dir, run(run_dir, _params(), workers=1, progress=False)


def test_stage_writes_artifacts_and_does_not_depend_on_workers(tmp_path, serial_run):
    run_dir, serial = serial_run
    parallel = run(tmp_path, _params(), workers=2, progress=False)
    assert isinstance(serial, SegmentationResult)
    assert serial.output.key == parallel.output.key and serial.output.complete
    assert (serial.workers, parallel.workers) == (1, 2) and serial.seconds > 0
    subjects = pd.read_csv(serial.output.path / "subjects.csv")
    assert list(subjects.columns) == ["subject", "grade", "source", *FRACTIONS]
    assert sorted(subjects["grade"]) == ["HGG", "LGG"] and set(subjects["source"]) == {"phantom"}
    np.testing.assert_allclose(subjects[FRACTIONS].sum(axis=1), 1.0, atol=1e-6)  # shares of the non-tumour brain
    assert (subjects[FRACTIONS] > 0).all().all()
    pd.testing.assert_frame_equal(
        serial.subjects, pd.read_csv(serial.output.path / "subjects.csv", dtype={"subject": str})
    )
    dice = pd.read_csv(serial.output.path / "dice.csv")
    assert list(dice.columns) == ["subject", "dice_gm", "dice_wm", "dice_csf"]
    assert (dice[["dice_gm", "dice_wm"]] > 0.8).all().all()
    assert list(serial.dice.index) == ["GM", "WM", "CSF"] and list(serial.dice.columns) == ["mean", "sd", "min", "max"]
    assert serial.dice.loc["GM", "mean"] == pytest.approx(dice["dice_gm"].mean())
    assert list(serial.timing.columns) == ["subject", "seconds_anatomy", "seconds_segmentation"]
    for name in subjects["subject"]:
        a, b = read_subject(serial.output, name), read_subject(parallel.output.path, name)
        assert set(a) >= {"t1", "flair", "labels", "brain", "gm", "wm", "csf", "voxel_mm", "gm_true"}
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")
    assert cache.current(run_dir, "segmentation").key == serial.output.key
    assert (run_dir / "segmentation" / "subjects.csv").is_file()  # exported beside current.json
    assert serial.figure_subject == subjects["subject"].iloc[0]
    labels = serial.figure_arrays["labels"]
    assert (labels[:, :, serial.figure_slice] > 0).sum() == (labels > 0).sum(axis=(0, 1)).max()
    glue = serial.glue_values
    assert glue["n_subjects"] == 2 and glue["sources"] == "phantom"
    assert glue["dice_gm_mean"] == pytest.approx(serial.dice.loc["GM", "mean"])


def test_the_phantom_flair_misregistration_is_a_parameter_of_its_own_cache(tmp_path, serial_run):
    _, serial = serial_run
    still = run(tmp_path, _params(flair_shift_mm=0.0, flair_rotation_deg=0.0), workers=1, progress=False)
    assert still.output.key != serial.output.key
    name = serial.subjects["subject"].iloc[0]
    moved, aligned = read_subject(serial.output, name), read_subject(still.output, name)
    assert not np.array_equal(moved["flair"], aligned["flair"])
    for key in ("t1", "labels", "gm", "wm", "csf"):
        np.testing.assert_array_equal(moved[key], aligned[key], err_msg=key)


def test_stage_reuses_a_complete_output(serial_run):
    run_dir, serial = serial_run
    first = serial.output
    npz = next(first.path.glob("*.npz"))
    stamp = npz.stat().st_mtime_ns
    again = run(run_dir, _params(), workers=2, progress=False)
    assert again.output.path == first.path and npz.stat().st_mtime_ns == stamp
    assert again.workers == 1  # the record of the run that built the cache
    with pytest.raises(FileNotFoundError, match="no such subject"):
        read_subject(first, "phantom_999")


def test_stage_reads_a_glob_of_nifti_subjects(tmp_path, phantom):
    _write(tmp_path / "sub01_T1.nii.gz", phantom["t1"])
    _write(tmp_path / "sub01_seg.nii.gz", phantom["labels"])
    params = _params(
        anatomy_source="nifti", nifti_glob=str(tmp_path / "*_T1.nii.gz"), n_subjects=0, anatomy_voxel_mm=2.0
    )  # the grid of the files: labels kept voxel for voxel
    result = run(tmp_path / "run", params, workers=1, progress=False)
    subjects = pd.read_csv(result.output.path / "subjects.csv")
    assert list(subjects.columns) == ["subject", "grade", "source", *FRACTIONS]
    assert subjects[["subject", "grade", "source"]].to_dict("records") == [
        {"subject": "sub01", "grade": "HGG", "source": "nifti"}
    ]
    assert subjects[FRACTIONS].sum(axis=1).iloc[0] == pytest.approx(1.0)
    assert pd.read_csv(result.output.path / "dice.csv").empty  # no ground truth outside the phantom cohort
    assert result.dice is None
    assert np.isnan(result.glue_values["dice_gm_mean"]) and result.glue_values["sources"] == "nifti"
    arrays = read_subject(result.output, "sub01")
    np.testing.assert_array_equal(arrays["labels"], phantom["labels"])
    assert np.all(arrays["gm"][phantom["labels"] > 0] == 0) and arrays["flair"].any()
