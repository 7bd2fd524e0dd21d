"""Tests of the HMRF tissue segmentation and its Dice scores (mrsisr.anatomy.segmentation)."""

import numpy as np
import pytest

from mrsisr.anatomy.phantom import make_phantom
from mrsisr.anatomy.segmentation import (
    TISSUES,
    brain_fractions,
    check_fractions,
    class_means,
    dice_scores,
    segment_tissues,
    unmix_two_tissues,
)


@pytest.fixture(scope="module")
def subject():
    phantom = make_phantom(11, "HGG")
    fractions = segment_tissues(phantom["t1"], phantom["brain"], phantom["labels"])
    return phantom, fractions


def test_fractions_are_partial_volumes_outside_the_tumour(subject):
    phantom, fractions = subject
    tissue = phantom["brain"] & (phantom["labels"] == 0)
    total = sum(fractions[t] for t in TISSUES)
    assert all(np.isfinite(fractions[t]).all() and fractions[t].dtype == np.float32 for t in TISSUES)
    np.testing.assert_allclose(total[tissue], 1.0, atol=1e-4)
    assert np.all(total[~tissue] == 0)  # background and tumour labels get no tissue
    mixed = (fractions["gm"] > 0.1) & (fractions["gm"] < 0.9)
    assert mixed.sum() > 0.2 * tissue.sum()  # genuinely partial-volume, not only hard labels
    error = [np.abs(fractions[t] - phantom[f"{t}_true"])[tissue].mean() for t in TISSUES]
    assert max(error) < 0.1


def test_dice_against_phantom_truth_meets_targets(subject):
    phantom, fractions = subject
    truth = {t: phantom[f"{t}_true"] for t in TISSUES}
    scores = dice_scores(fractions, truth, phantom["brain"] & (phantom["labels"] == 0))
    assert scores["dice_gm"] >= 0.85
    assert scores["dice_wm"] >= 0.88
    assert scores["dice_csf"] >= 0.7


def test_bright_outliers_are_clipped_before_classifying(subject):
    """Real T1 holds vessels and fat far above the tissue range (BraTS: up to 32767); they must not own a class."""
    phantom, _ = subject
    t1 = phantom["t1"].copy()
    tissue = phantom["brain"] & (phantom["labels"] == 0)
    spots = np.flatnonzero(tissue.ravel())[::400]  # 0.25 % of the tissue
    t1.ravel()[spots] = 30.0 * t1.max()
    fractions = segment_tissues(t1, phantom["brain"], phantom["labels"])
    truth = {t: phantom[f"{t}_true"] for t in TISSUES}
    scores = dice_scores(fractions, truth, tissue)
    assert scores["dice_gm"] >= 0.85 and scores["dice_wm"] >= 0.88
    check_fractions(brain_fractions(fractions, tissue), "phantom")


def test_brain_fractions_and_the_plausibility_check():
    mask = np.ones((10, 1, 1), bool)
    fractions = {t: np.zeros((10, 1, 1), np.float32) for t in TISSUES}
    fractions["gm"][:4] = 1.0
    fractions["wm"][4:9] = 1.0
    fractions["csf"][9] = 1.0
    shares = brain_fractions(fractions, mask)
    assert shares == pytest.approx({"gm": 0.4, "wm": 0.5, "csf": 0.1})
    check_fractions(shares, "t1.nii.gz")
    with pytest.raises(ValueError, match=r"sub01_t1.nii.gz: implausible tissue segmentation \(CSF 0.35 not in"):
        check_fractions({"gm": 0.4, "wm": 0.25, "csf": 0.35}, "sub01_t1.nii.gz")
    with pytest.raises(ValueError, match=r"GM 0.15 not in \[0.25, 0.60\]; WM 0.00 not in .*found GM 0.150, WM 0.000"):
        check_fractions({"gm": 0.15, "wm": 0.0, "csf": 0.85}, "x")
    with pytest.raises(ValueError, match="no tissue"):
        brain_fractions(fractions, np.zeros_like(mask))


def test_exactly_zero_background_gives_no_nan():
    phantom = make_phantom(3, "LGG")
    t1 = np.where(phantom["brain"], phantom["t1"], 0.0)
    fractions = segment_tissues(t1, phantom["brain"])
    assert all(np.isfinite(fractions[t]).all() for t in TISSUES)
    total = sum(fractions[t] for t in TISSUES)
    np.testing.assert_allclose(total[phantom["labels"] > 0], 1.0, atol=1e-4)  # without labels the tumour is tissue


def test_two_tissue_mixel_model_on_known_intensities():
    image = np.array([0.1, 0.3, 0.45, 0.6, 0.75, 0.9, 1.2])
    fractions = unmix_two_tissues(image, np.array([0.3, 0.6, 0.9]))
    np.testing.assert_allclose(fractions["csf"], [1, 1, 0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(fractions["gm"], [0, 0, 0.5, 1, 0.5, 0, 0])
    np.testing.assert_allclose(fractions["wm"], [0, 0, 0, 0, 0.5, 1, 1])


def test_class_means_refuse_an_image_without_t1_contrast():
    image = np.random.default_rng(0).random((12, 12, 12))
    hard = np.tile(np.array([1, 2, 3]).repeat(4), (12, 12, 1))  # CSF, GM, WM slabs along z
    image[..., :4] += 2.0  # the "CSF" slab is the brightest
    with pytest.raises(ValueError, match="not ordered CSF < GM < WM"):
        class_means(image, hard, np.ones(image.shape, bool))


def test_dice_scores_on_hand_made_labels():
    truth = {t: np.zeros((4, 1, 1), np.float32) for t in TISSUES}
    est = {t: np.zeros((4, 1, 1), np.float32) for t in TISSUES}
    for i, t in enumerate(["gm", "gm", "wm", "csf"]):
        truth[t][i] = 1.0
    for i, t in enumerate(["gm", "wm", "wm", "csf"]):
        est[t][i] = 1.0
    scores = dice_scores(est, truth, np.ones((4, 1, 1), bool))
    assert scores == pytest.approx({"dice_gm": 2 / 3, "dice_wm": 2 / 3, "dice_csf": 1.0})


def test_bad_inputs_are_refused():
    t1 = np.ones((10, 10, 10), np.float32)
    brain = np.ones((10, 10, 10), bool)
    with pytest.raises(ValueError, match="unknown segmentation_method"):
        segment_tissues(t1, brain, method="fast")
    with pytest.raises(ValueError, match=r"t1 \(10, 10, 10\), brain \(10, 10\)"):
        segment_tissues(t1, brain[..., 0])
    with pytest.raises(ValueError, match="only 0 tissue voxels"):
        segment_tissues(t1, np.zeros_like(brain))
