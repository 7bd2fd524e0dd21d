"""Tests of the ICBM152 phantom cohort (mrsisr.anatomy.phantom)."""

import numpy as np
import pytest
from scipy import ndimage

from mrsisr.anatomy.phantom import make_phantom, make_tumour


@pytest.fixture(scope="module")
def hgg():
    return make_phantom(7, "HGG")


def test_same_seed_gives_identical_arrays(hgg):
    again = make_phantom(7, "HGG")
    for key, value in hgg.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(again[key]), err_msg=key)


def test_different_seeds_give_different_subjects(hgg):
    other = make_phantom(8, "HGG")
    assert not np.array_equal(hgg["gm_true"], other["gm_true"])
    assert not np.array_equal(hgg["labels"], other["labels"])


def test_contract_keys_types_and_geometry(hgg):
    shape = hgg["t1"].shape
    assert hgg["grade"] == "HGG"
    np.testing.assert_array_equal(hgg["voxel_mm"], [2.0, 2.0, 2.0])
    for key in ("t1", "flair", "gm_true", "wm_true", "csf_true"):
        assert hgg[key].dtype == np.float32 and hgg[key].shape == shape, key
    assert hgg["labels"].dtype == np.uint8 and hgg["brain"].dtype == bool
    assert set(np.unique(hgg["labels"])) == {0, 1, 2, 4}
    # the brain is about the size of an adult brain (1.1-1.9 litres)
    assert 1.1e6 < hgg["brain"].sum() * 8.0 < 1.9e6


def test_true_fractions_partition_the_tissue(hgg):
    tissue = hgg["brain"] & (hgg["labels"] == 0)
    total = hgg["gm_true"] + hgg["wm_true"] + hgg["csf_true"]
    np.testing.assert_allclose(total[tissue], 1.0, atol=1e-5)
    assert np.all(total[~tissue] == 0)
    assert (hgg["labels"][~hgg["brain"]] == 0).all()
    assert min(hgg[k].min() for k in ("gm_true", "wm_true", "csf_true")) >= 0


def test_contrasts_follow_t1_and_flair_ordering(hgg):
    tissue = hgg["brain"] & (hgg["labels"] == 0)
    pure = {k: tissue & (hgg[f"{k}_true"] > 0.9) for k in ("csf", "gm", "wm")}
    t1 = {k: np.median(hgg["t1"][m]) for k, m in pure.items()}
    flair = {k: np.median(hgg["flair"][m]) for k, m in pure.items()}
    assert t1["csf"] < t1["gm"] < t1["wm"]
    assert flair["csf"] < flair["wm"] < flair["gm"]
    assert np.median(hgg["flair"][hgg["labels"] == 2]) > flair["gm"]  # oedema bright


def test_tumour_is_one_compact_region_inside_the_brain(hgg):
    tumour = hgg["labels"] > 0
    parts, n_parts = ndimage.label(tumour)
    sizes = np.bincount(parts.ravel())[1:]
    assert sizes.max() > 0.95 * tumour.sum(), f"{n_parts} parts"
    volume_ml = tumour.sum() * 8.0 / 1000
    assert 5 < volume_ml < 300


def _ball_brain(radius_mm=60.0, voxel_mm=2.0):
    n = int(2 * radius_mm / voxel_mm) + 4
    axes = (np.arange(n) - (n - 1) / 2) * voxel_mm
    x, y, z = np.meshgrid(axes, axes, axes, indexing="ij")
    brain = (x**2 + y**2 + z**2 < radius_mm**2).astype(np.float32)
    return brain * 0.8, brain


def test_grades_shape_the_tumour():
    wm, brain = _ball_brain()
    enhancing = {"LGG": 0, "HGG": 0}
    for seed in range(10):
        for grade in enhancing:
            labels, necrosis, _ = make_tumour(np.random.default_rng(seed), grade, wm, brain, 2.0)
            assert set(np.unique(labels)) <= {0, 1, 2, 4}
            assert (labels == 2).any() and (labels == 1).any()
            enhancing[grade] += bool((labels == 4).any())
            if grade == "HGG":
                assert necrosis.any() and (labels[necrosis] == 1).all()
            else:
                assert not necrosis.any()
    assert enhancing["HGG"] == 10
    assert enhancing["LGG"] <= 5  # low-grade tumours are mostly non-enhancing


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="grade"):
        make_phantom(0, "GBM")
    with pytest.raises(ValueError, match="whole number"):
        make_phantom(0, "LGG", voxel_mm=1.5)
