"""Tests of the ICBM152 phantom cohort (mrsisr.anatomy.phantom)."""

import numpy as np
import pytest
from scipy import ndimage

from mrsisr.anatomy.phantom import (
    FlairMisregistration,
    make_phantom,
    make_tumour,
    render_flair,
    thick_slice_acquisition,
)


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
    assert hgg["affine"].dtype == np.float64 and hgg["affine"].shape == (4, 4)
    np.testing.assert_array_equal(np.diag(hgg["affine"]), [2.0, 2.0, 2.0, 1.0])
    centre = hgg["affine"] @ np.array([*(np.array(shape) - 1) / 2, 1.0])
    np.testing.assert_allclose(centre[:3], [0.0, -18.0, 8.0])  # the template brain's centre in MNI mm
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


def _linear_fit_r2(image, fractions, mask):
    design = np.stack([fractions[t][mask] for t in ("gm", "wm", "csf")], axis=1)
    values = image[mask].astype(np.float64)
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    return 1.0 - ((values - design @ coef) ** 2).sum() / ((values - values.mean()) ** 2).sum()


def test_flair_is_not_the_maps_partial_volume_model(hgg):
    """The T1 is (up to bias and noise) a linear mix of the true fractions; the FLAIR guide must not be."""
    tissue = hgg["brain"] & (hgg["labels"] == 0)
    truth = {t: hgg[f"{t}_true"] for t in ("gm", "wm", "csf")}
    assert _linear_fit_r2(hgg["t1"], truth, tissue) > 0.9
    assert _linear_fit_r2(hgg["flair"], truth, tissue) < 0.7


def test_flair_keeps_its_contrast_order_across_subjects():
    for seed in range(3):
        phantom = make_phantom(seed, "HGG")
        tissue = phantom["brain"] & (phantom["labels"] == 0)
        pure = {k: tissue & (phantom[f"{k}_true"] > 0.95) for k in ("csf", "gm", "wm")}
        flair = {k: np.median(phantom["flair"][m]) for k, m in pure.items()}
        assert flair["csf"] < flair["wm"] < flair["gm"] < np.median(phantom["flair"][phantom["labels"] == 2])


def _blocks():
    """A 40^3 grid: GM in x < 20, WM beyond, inside a 30^3 brain; no tumour."""
    brain = np.zeros((40, 40, 40), bool)
    brain[5:35, 5:35, 5:35] = True
    gm = np.zeros((40, 40, 40))
    gm[:20] = 1.0
    fractions = {"gm": gm * brain, "wm": (1 - gm) * brain, "csf": np.zeros_like(gm)}
    return fractions, np.zeros(brain.shape, np.uint8), np.zeros(brain.shape, bool), brain


def test_render_flair_is_deterministic_with_its_own_contrast_and_moved_edges():
    fractions, labels, necrosis, brain = _blocks()
    flairs = [render_flair(np.random.default_rng(s), fractions, labels, necrosis, brain, 2.0) for s in range(6)]
    again = render_flair(np.random.default_rng(0), fractions, labels, necrosis, brain, 2.0)
    np.testing.assert_array_equal(flairs[0], again)
    assert all(f.dtype == np.float32 and (f >= 0).all() and not f[~brain].any() for f in flairs)
    ratios = [np.median(f[8:16, 10:30, 10:30]) / np.median(f[24:32, 10:30, 10:30]) for f in flairs]
    assert min(ratios) > 1.05 and np.ptp(ratios) > 0.05  # GM brighter than WM, by a contrast drawn per subject
    # the misregistration moves the GM/WM edge (x = 19.5): the steepest drop is not always at the same place
    edges = {int(np.argmin(np.diff(np.median(f[10:30, 15:25, 15:25], axis=(1, 2))))) for f in flairs}
    assert len(edges) > 1


def test_an_in_register_flair_keeps_the_edge_and_changes_nothing_else():
    fractions, labels, necrosis, brain = _blocks()
    still = FlairMisregistration(shift_mm=0.0, rotation_deg=0.0)
    flairs = [render_flair(np.random.default_rng(s), fractions, labels, necrosis, brain, 2.0, still) for s in range(6)]
    edges = {int(np.argmin(np.diff(np.median(f[10:30, 15:25, 15:25], axis=(1, 2))))) for f in flairs}
    assert edges == {9}  # the GM/WM edge at x = 19.5, between profile samples 9 and 10, in every subject

    default, aligned = make_phantom(3, "LGG"), make_phantom(3, "LGG", flair_misregistration=still)
    for key in default.keys() - {"flair"}:  # the motion's draws are made either way: only the FLAIR moves
        np.testing.assert_array_equal(np.asarray(default[key]), np.asarray(aligned[key]), err_msg=key)
    assert not np.array_equal(default["flair"], aligned["flair"])


def test_thick_slice_acquisition_averages_along_z_only():
    ramp = np.broadcast_to(np.arange(30.0), (4, 5, 30)).copy()
    np.testing.assert_allclose(thick_slice_acquisition(ramp, 2.5, 1.0)[:, :, 4:-4], ramp[:, :, 4:-4], atol=1e-9)
    spike = np.zeros((2, 2, 30))
    spike[:, :, 15] = 1.0
    acquired = thick_slice_acquisition(spike, 2.5, 0.3)
    assert acquired.max() < 0.6 and (acquired[0, 0] > 0.05).sum() >= 3  # one thin line spread over slices
    np.testing.assert_allclose(acquired.sum(axis=2), 1.0, rtol=0.2)


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
