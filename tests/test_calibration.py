"""Calibration of the synthesis on the paper's baselines: table shape, determinism, choice, inputs."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mrsisr.maps.calibration import (
    DEFAULT_SETTING,
    METHODS,
    PAPER_COHORT,
    _brats_2017_labels,
    calibrate,
    choose_setting,
    full_setting,
    paper_rows,
    phantom_specs,
    sample_specs,
    setting_label,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats-samples"
TINY = [
    {"anatomy_voxel_mm": 4.0},
    {"anatomy_voxel_mm": 4.0, "slice_thickness_mm": 0.0, "tissue_model": "hard", "map_noise": 0.02},
]


@pytest.fixture(scope="module")
def tiny_table():
    return calibrate(TINY, {"phantom": phantom_specs(2, seed=3)}, seed=3, progress=False)


def test_tiny_calibration_table_has_the_paper_rows_and_one_row_per_setting_and_method(tiny_table):
    assert len(tiny_table) == len(METHODS) * (1 + len(TINY))
    paper = tiny_table[tiny_table["cohort"] == PAPER_COHORT].set_index("method")
    assert paper.loc["nearest", "psnr"] == 21.87 and paper.loc["spline", "ssim"] == 0.77
    ours = tiny_table[tiny_table["cohort"] == "phantom"]
    assert list(ours["setting"].unique()) == [setting_label(s) for s in TINY]
    assert (ours["n_maps"] == 2 * 5).all()  # two subjects, one slice each, five kinds
    assert ours[["psnr", "ssim", "lpips"]].notna().all().all()
    np.testing.assert_allclose(ours["d_psnr"], ours["psnr"] - ours["method"].map(paper["psnr"]))
    by_setting = ours.set_index(["setting", "method"])["psnr"]
    for label in ours["setting"].unique():
        assert by_setting[(label, "spline")] > by_setting[(label, "nearest")]
    plain, harder = (by_setting[(setting_label(s), "spline")] for s in TINY)
    assert harder < plain  # one noisy slice of hard classes is harder than a smooth slab


def test_calibration_is_deterministic(tiny_table):
    again = calibrate(TINY, {"phantom": phantom_specs(2, seed=3)}, seed=3, progress=False)
    pd.testing.assert_frame_equal(tiny_table, again)


def test_choose_setting_picks_the_closest_to_the_paper():
    paper = paper_rows().set_index("method")
    rows = []
    for label, offset in (("far", (3.0, 0.1)), ("near", (0.5, -0.02)), ("mixed", (0.1, 0.05))):
        for method in METHODS:
            rows.append({"cohort": "c", "setting": label, "method": method, "d_psnr": offset[0], "d_ssim": offset[1]})
    table = pd.DataFrame(rows)
    chosen = choose_setting(table, "c")
    assert chosen["setting"] == "near" and chosen["within_target"]
    assert chosen["score"] == pytest.approx(2 / 3) and chosen["d_psnr_spline"] == 0.5
    assert not choose_setting(table[table["setting"] != "near"], "c")["within_target"]
    with pytest.raises(ValueError, match="no cohort"):
        choose_setting(table, "other")
    assert set(paper.index) == set(METHODS)


def test_settings_are_completed_and_checked():
    assert full_setting({}) == DEFAULT_SETTING
    assert setting_label({}) == "10 mm slab, partial volume, 2 mm anatomy, kspace, fov 220"
    assert setting_label({"slice_thickness_mm": 0, "map_noise": 0.01}).startswith("one slice")
    for bad, message in (
        ({"slab": 1}, "unknown calibration setting"),
        ({"tissue_model": "fuzzy"}, "tissue_model"),
        ({"lowres_method": "bilinear"}, "lowres_method"),
        ({"fov_mm": -1.0}, "map grid"),
        ({"map_noise": -0.1}, "map_noise"),
    ):
        with pytest.raises(ValueError, match=message):
            full_setting(bad)


def test_phantom_specs_are_reproducible_and_alternate_grades():
    specs = phantom_specs(4, seed=1)
    assert specs == phantom_specs(4, seed=1) and specs != phantom_specs(4, seed=2)
    assert [s.grade for s in specs] == ["LGG", "HGG", "LGG", "HGG"]
    assert len({s.seed for s in specs}) == 4


def test_brats_2023_enhancing_label_is_renamed(tmp_path):
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1, 1, 1], labels[2, 2, 2] = 3, 2
    seg = tmp_path / "case-seg.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), seg)
    out = tmp_path / "out"
    out.mkdir()
    renamed = _brats_2017_labels(str(seg), str(out))
    assert renamed != str(seg)
    np.testing.assert_array_equal(np.unique(np.asarray(nib.load(renamed).dataobj)), [0, 2, 4])
    labels[3, 3, 3] = 4  # a mask that already has label 4 is left alone
    nib.save(nib.Nifti1Image(labels, np.eye(4)), seg)
    assert _brats_2017_labels(str(seg), str(out)) == str(seg)


def test_sample_specs_find_the_three_brats_layouts():
    if not SAMPLES.is_dir():
        pytest.skip(f"real BraTS samples: {SAMPLES} not found")
    specs = sample_specs(SAMPLES)
    assert len(specs) == 3 and all(s.t1 and s.flair and s.seg for s in specs)
    assert any(s.t1.endswith("-t1n.nii.gz") and s.flair.endswith("-t2f.nii.gz") for s in specs)


def test_sample_specs_need_cases(tmp_path):
    with pytest.raises(FileNotFoundError, match="no case folder"):
        sample_specs(tmp_path)
