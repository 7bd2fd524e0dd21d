"""Calibration of the synthesis on the paper's baselines: table shape, determinism, choice, inputs."""

import numpy as np
import pandas as pd
import pytest

from mrsisr.anatomy.cohort import SubjectSpec
from mrsisr.maps.calibration import (
    DEFAULT_SETTING,
    METHODS,
    PAPER_COHORT,
    calibrate,
    choose_setting,
    full_setting,
    paper_rows,
    setting_label,
)

PHANTOMS = [SubjectSpec("phantom_000", "phantom", "LGG", 11), SubjectSpec("phantom_001", "phantom", "HGG", 12)]
TINY = [
    {"anatomy_voxel_mm": 4.0},
    {"anatomy_voxel_mm": 4.0, "slice_thickness_mm": 0.0, "tissue_model": "hard", "map_noise": 0.02},
]


@pytest.fixture(scope="module")
def tiny_table():
    return calibrate(TINY, {"phantom": PHANTOMS}, seed=3, progress=False)


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
    again = calibrate(TINY, {"phantom": PHANTOMS}, seed=3, progress=False)
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
